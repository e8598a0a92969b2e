package procemu

import (
	"fmt"
	"math"
	"time"
)

// RenderLoadavg renders /proc/loadavg: v.Load (see View.Load and LoadAvg), the container's
// runnable tasks over all its tasks, and its last pid. The averages are rounded to hundredths
// as the kernel rounds them (it adds 0.005 before truncating).
func RenderLoadavg(v View) ([]byte, error) {
	var c [3]uint64
	for i, l := range v.Load {
		c[i] = uint64(math.Floor(max(l, 0)*100 + 0.5))
	}
	return fmt.Appendf(nil, "%d.%02d %d.%02d %d.%02d %d/%d %d\n",
		c[0]/100, c[0]%100, c[1]/100, c[1]%100, c[2]/100, c[2]%100,
		v.Running, v.Threads, v.LastPID), nil
}

// LoadAvg smooths samples of a cgroup's active task count (runnable plus uninterruptible)
// into 1, 5 and 15 minute load averages, the kernel's exponential decay applied over the
// real time between samples (the kernel samples every 5 s; so does lxcfs). The zero value is
// ready; its first sample seeds all three averages, so a tracker started late (after a
// restart of its server) does not report an idle container that is busy.
type LoadAvg struct {
	avg  [3]float64
	last time.Time
}

// loadWindows are the time constants of the three averages.
var loadWindows = [3]time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute}

// Update adds a sample of active tasks taken at now and returns the averages. A sample not
// after the previous one leaves them unchanged.
func (l *LoadAvg) Update(active int, now time.Time) [3]float64 {
	a := float64(max(active, 0))
	switch {
	case l.last.IsZero():
		l.avg = [3]float64{a, a, a}
	case now.After(l.last):
		dt := now.Sub(l.last).Seconds()
		for i, w := range loadWindows {
			f := math.Exp(-dt / w.Seconds())
			l.avg[i] = l.avg[i]*f + a*(1-f)
		}
	default:
		return l.avg
	}
	l.last = now
	return l.avg
}

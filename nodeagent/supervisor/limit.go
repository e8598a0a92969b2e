package supervisor

import (
	"sync"
	"time"
)

// Limiter lets one report per key through per Every; it counts the ones it holds back, so
// the next report can say how many there were. A container in a hot loop of refused calls
// makes one pod Event per Every, not thousands.
type Limiter struct {
	Every time.Duration
	Now   func() time.Time

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

// Allow reports whether a report for key may go out now, and how many were held back
// since the last one that did.
func (l *Limiter) Allow(key string) (bool, int) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	t := now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.held = map[string]time.Time{}, map[string]int{}
	}
	if last, ok := l.last[key]; ok && t.Sub(last) < l.Every {
		l.held[key]++
		return false, 0
	}
	held := l.held[key]
	l.last[key] = t
	delete(l.held, key)
	if len(l.last) > 10000 {
		// Forget keys that are quiet, so the map cannot grow without bound.
		for k, v := range l.last {
			if t.Sub(v) >= l.Every && l.held[k] == 0 {
				delete(l.last, k)
			}
		}
	}
	return true, held
}

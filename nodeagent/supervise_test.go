package nodeagent

import (
	"errors"
	"testing"
	"time"

	"github.com/eci-dev/eci/procemu"
)

func TestSysinfoCache(t *testing.T) {
	loads := map[string]int{}
	c := &sysinfoCache{TTL: 50 * time.Millisecond, Load: func(id string) (procemu.Sysinfo, error) {
		loads[id]++
		if id == "gone" {
			return procemu.Sysinfo{}, errors.New("no record")
		}
		return procemu.Sysinfo{TotalRAM: uint64(loads[id])}, nil
	}}
	for range 3 {
		if si, err := c.Get("a"); err != nil || si.TotalRAM != 1 {
			t.Fatalf("Get(a) = %v, %v; want the first load, cached", si, err)
		}
	}
	if _, err := c.Get("gone"); err == nil {
		t.Fatal("a failed load was not an error")
	}
	if _, err := c.Get("gone"); err == nil || loads["gone"] != 2 {
		t.Fatalf("a failed load was cached (%d loads)", loads["gone"])
	}
	time.Sleep(60 * time.Millisecond)
	if si, _ := c.Get("a"); si.TotalRAM != 2 {
		t.Fatalf("after the TTL: %v, want a second load", si)
	}
}

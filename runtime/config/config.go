// Package config loads eci-runtime's settings file.
//
// The file is JSON, at /etc/eci/runtime.json unless ECI_CONFIG names another one. A missing
// file means every default below; a file that does not parse, has unknown fields or has bad
// values is an error naming the file and the field, and eci-runtime refuses to create
// containers until it is fixed (it never falls back to weaker settings).
//
//	{
//	  "stateDir": "/var/lib/eci",          // persistent state (none yet for the runtime)
//	  "runDir": "/run/eci",                // per-boot state on tmpfs: the id allocator,
//	                                       // container records, mount points
//	  "idPool": {"start": 2147483648, "size": 1073741824},
//	                                       // host ids eci hands out; keep it disjoint from the
//	                                       // kubelet's range (it allocates from 65536 upward)
//	  "idsPerPod": 65536,                  // ids per pod, a multiple of 65536
//	  "extraProtectedPaths": ["/srv/secrets"] // host paths no container may bind-mount,
//	                                       // on top of the built-in list
//	}
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultPath is where eci-runtime looks for its settings; EnvPath overrides it.
const (
	DefaultPath = "/etc/eci/runtime.json"
	EnvPath     = "ECI_CONFIG"
)

// BlockSize is the unit of id ranges: every range starts and ends on a multiple of it.
const BlockSize = 65536

// Pool is the block of host ids eci allocates pod ranges from.
type Pool struct {
	Start uint32 `json:"start"`
	Size  uint32 `json:"size"`
}

// Config is eci-runtime's settings.
type Config struct {
	StateDir            string   `json:"stateDir"`
	RunDir              string   `json:"runDir"`
	IDPool              Pool     `json:"idPool"`
	IDsPerPod           uint32   `json:"idsPerPod"`
	ExtraProtectedPaths []string `json:"extraProtectedPaths,omitempty"`
}

// Default returns the built-in settings.
func Default() Config {
	return Config{
		StateDir:  "/var/lib/eci",
		RunDir:    "/run/eci",
		IDPool:    Pool{Start: 1 << 31, Size: 1 << 30},
		IDsPerPod: BlockSize,
	}
}

// AllocatorDir is where the id allocator keeps its state: per boot, on tmpfs. Ranges belong
// to containers, which never outlive a boot, and tmpfs makes the allocator's fsyncs free
// while its lock and atomic renames still protect it from eci-runtime crashes.
func AllocatorDir(c Config) string { return filepath.Join(c.RunDir, "idalloc") }

// Load reads the settings file named by ECI_CONFIG, or DefaultPath.
func Load() (Config, string, error) {
	path := os.Getenv(EnvPath)
	if path == "" {
		path = DefaultPath
	}
	c, err := LoadFile(path)
	return c, path, err
}

// LoadFile reads one settings file; a missing file gives the defaults.
func LoadFile(path string) (Config, error) {
	c := Default()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Validate checks every field and names the first bad one.
func (c Config) Validate() error {
	for name, dir := range map[string]string{"stateDir": c.StateDir, "runDir": c.RunDir} {
		if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
			return fmt.Errorf("%s %q must be an absolute, clean path", name, dir)
		}
	}
	if err := c.IDPool.Validate(); err != nil {
		return fmt.Errorf("idPool: %w", err)
	}
	if c.IDsPerPod == 0 || c.IDsPerPod%BlockSize != 0 {
		return fmt.Errorf("idsPerPod %d must be a positive multiple of %d", c.IDsPerPod, BlockSize)
	}
	if c.IDsPerPod > c.IDPool.Size {
		return fmt.Errorf("idsPerPod %d is larger than the pool (%d ids)", c.IDsPerPod, c.IDPool.Size)
	}
	for _, p := range c.ExtraProtectedPaths {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return fmt.Errorf("extraProtectedPaths: %q must be an absolute, clean path", p)
		}
	}
	return nil
}

// Validate checks that the pool lies in [65536, 2^32-1) and is aligned to BlockSize.
func (p Pool) Validate() error {
	switch {
	case p.Size == 0:
		return errors.New("size must be positive")
	case p.Start < BlockSize:
		return fmt.Errorf("start %d is below %d: host ids under 65536 are never handed to containers", p.Start, BlockSize)
	case p.Start%BlockSize != 0 || p.Size%BlockSize != 0:
		return fmt.Errorf("start %d and size %d must be multiples of %d", p.Start, p.Size, BlockSize)
	case uint64(p.Start)+uint64(p.Size) > 1<<32-1:
		return fmt.Errorf("start %d + size %d passes the largest valid id 4294967294", p.Start, p.Size)
	}
	return nil
}

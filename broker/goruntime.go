package broker

import (
	"errors"
	"fmt"
	"math"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// RuntimeConfig is how the Go runtime manages the broker's memory. It is
// applied at start; a reload does not change it.
type RuntimeConfig struct {
	// MemoryLimit is the runtime's soft memory limit (GOMEMLIMIT
	// semantics: bytes, or a number with B, KiB, MiB, GiB or TiB): near
	// it the GC runs more often and freed memory goes back to the OS
	// sooner. 0 derives it from the container (cgroup) memory limit, else
	// from the machine's memory (derivedMemoryShare of it). The GOMEMLIMIT
	// environment variable wins over both.
	MemoryLimit ByteSize `yaml:"memory_limit"`
	// GOGC is the GC's target: the heap may grow by this percentage of
	// what was live after the last collection before the next one starts.
	// Lower trades GC CPU for memory. The GOGC environment variable wins.
	GOGC int `yaml:"gogc"`
}

// derivedMemoryShare is the share of the container's or machine's memory
// a derived limit allows the Go runtime (automemlimit's default): the
// rest is left to what the runtime does not count, such as the kernel's
// socket buffers of every connection and the page cache of the store.
const derivedMemoryShare = 0.9

// DefaultGOGC is the Go runtime's own default.
const DefaultGOGC = 100

// runtimeSettings are the values in force after applyRuntime, and where
// each came from, for the start-up log line.
type runtimeSettings struct {
	MemoryLimit int64  // bytes; math.MaxInt64 when there is none
	LimitFrom   string // "GOMEMLIMIT", "config", "cgroup", "machine" or "none"
	GOGC        int
	GOGCFrom    string // "GOGC" or "config"
}

// applyRuntime sets the process's memory limit and GC target from c,
// unless the GOMEMLIMIT or GOGC environment variables (which the runtime
// applied at start) are set; getenv reads the environment.
func applyRuntime(c RuntimeConfig, getenv func(string) string) runtimeSettings {
	var s runtimeSettings
	switch {
	case getenv("GOMEMLIMIT") != "":
		s.MemoryLimit, s.LimitFrom = debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	case c.MemoryLimit > 0:
		s.MemoryLimit, s.LimitFrom = int64(c.MemoryLimit), "config"
		debug.SetMemoryLimit(s.MemoryLimit)
	default:
		s.MemoryLimit, s.LimitFrom = deriveMemoryLimit(memlimit.FromCgroup, memlimit.FromSystem)
		debug.SetMemoryLimit(s.MemoryLimit)
	}
	if getenv("GOGC") != "" {
		s.GOGC = debug.SetGCPercent(DefaultGOGC)
		debug.SetGCPercent(s.GOGC) // only read: the environment's value stays
		s.GOGCFrom = "GOGC"
	} else {
		s.GOGC, s.GOGCFrom = c.GOGC, "config"
		debug.SetGCPercent(s.GOGC)
	}
	return s
}

// deriveMemoryLimit is derivedMemoryShare of the smaller of the cgroup's
// memory limit and the machine's memory (automemlimit reads both: cgroup
// v1 and v2, and the kernel's total), and says which one it was. Without
// either it returns no limit.
func deriveMemoryLimit(cgroup, machine memlimit.Provider) (int64, string) {
	limit, from := uint64(0), "none"
	if v, err := cgroup(); err == nil && v > 0 {
		limit, from = v, "cgroup"
	}
	if v, err := machine(); err == nil && v > 0 && (limit == 0 || v < limit) {
		limit, from = v, "machine"
	}
	if limit == 0 {
		return math.MaxInt64, from
	}
	return int64(min(float64(limit)*derivedMemoryShare, math.MaxInt64)), from
}

// validateRuntime checks the runtime section.
func validateRuntime(c RuntimeConfig) error {
	var errs []error
	if c.MemoryLimit < 0 {
		errs = append(errs, errors.New("runtime.memory_limit must not be negative (0 derives it from the container's or machine's memory)"))
	} else if c.MemoryLimit > 0 && c.MemoryLimit < 64<<20 {
		errs = append(errs, fmt.Errorf("runtime.memory_limit %d is below 64MiB: the GC would run without pause", c.MemoryLimit))
	}
	if c.GOGC < 10 || c.GOGC > 1000 {
		errs = append(errs, fmt.Errorf("runtime.gogc must be 10..1000, got %d", c.GOGC))
	}
	return errors.Join(errs...)
}

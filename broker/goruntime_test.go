package broker

import (
	"errors"
	"math"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

func TestDeriveMemoryLimit(t *testing.T) {
	limit := func(v uint64) memlimit.Provider { return func() (uint64, error) { return v, nil } }
	fail := func(err error) memlimit.Provider { return func() (uint64, error) { return 0, err } }
	for _, tc := range []struct {
		name            string
		cgroup, machine memlimit.Provider
		want            int64
		from            string
	}{
		{"cgroup below the machine", limit(1 << 30), limit(8 << 30), 966367641, "cgroup"}, // 0.9 GiB
		{"cgroup above the machine", limit(64 << 30), limit(8 << 30), 7730941132, "machine"},
		{"no cgroup limit", fail(memlimit.ErrNoLimit), limit(8 << 30), 7730941132, "machine"},
		{"cgroup unreadable", fail(errors.New("no cgroup fs")), limit(2 << 30), 1932735283, "machine"},
		{"machine unknown", limit(1 << 30), fail(memlimit.ErrNoLimit), 966367641, "cgroup"},
		{"nothing known: no limit", fail(memlimit.ErrNoLimit), fail(memlimit.ErrNoLimit), math.MaxInt64, "none"},
		{"zero is not a limit", limit(0), limit(0), math.MaxInt64, "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, from := deriveMemoryLimit(tc.cgroup, tc.machine)
			if got != tc.want || from != tc.from {
				t.Fatalf("got %d from %s, want %d from %s", got, from, tc.want, tc.from)
			}
		})
	}
}

// TestApplyRuntime sets the process's memory limit and GC target, so it
// restores both; it is not parallel.
func TestApplyRuntime(t *testing.T) {
	limit0, gogc0 := debug.SetMemoryLimit(-1), debug.SetGCPercent(DefaultGOGC)
	t.Cleanup(func() { debug.SetMemoryLimit(limit0); debug.SetGCPercent(gogc0) })
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name string
		cfg  RuntimeConfig
		env  func(string) string
		// the runtime's settings before: as GOMEMLIMIT and GOGC would have set them
		limitBefore int64
		gogcBefore  int
		want        runtimeSettings
	}{
		{"config values", RuntimeConfig{MemoryLimit: 1 << 30, GOGC: 50}, env(), math.MaxInt64, 100,
			runtimeSettings{MemoryLimit: 1 << 30, LimitFrom: "config", GOGC: 50, GOGCFrom: "config"}},
		{"environment wins over config", RuntimeConfig{MemoryLimit: 1 << 30, GOGC: 50}, env("GOMEMLIMIT", "512MiB", "GOGC", "75"), 512 << 20, 75,
			runtimeSettings{MemoryLimit: 512 << 20, LimitFrom: "GOMEMLIMIT", GOGC: 75, GOGCFrom: "GOGC"}},
		{"GOGC=off is kept", RuntimeConfig{GOGC: 100}, env("GOMEMLIMIT", "1GiB", "GOGC", "off"), 1 << 30, -1,
			runtimeSettings{MemoryLimit: 1 << 30, LimitFrom: "GOMEMLIMIT", GOGC: -1, GOGCFrom: "GOGC"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(tc.limitBefore)
			debug.SetGCPercent(tc.gogcBefore)
			got := applyRuntime(tc.cfg, tc.env)
			if got != tc.want {
				t.Fatalf("settings %+v, want %+v", got, tc.want)
			}
			if l, g := debug.SetMemoryLimit(-1), debug.SetGCPercent(tc.want.GOGC); l != tc.want.MemoryLimit || g != tc.want.GOGC {
				t.Fatalf("runtime has limit %d and GOGC %d, want %d and %d", l, g, tc.want.MemoryLimit, tc.want.GOGC)
			}
		})
	}
	t.Run("derived by default", func(t *testing.T) {
		debug.SetMemoryLimit(math.MaxInt64)
		got := applyRuntime(RuntimeConfig{GOGC: DefaultGOGC}, env())
		machine, err := memlimit.FromSystem()
		if err != nil {
			t.Fatalf("this test needs the machine's memory size: %v", err)
		}
		if got.LimitFrom != "cgroup" && got.LimitFrom != "machine" || got.MemoryLimit > int64(float64(machine)*derivedMemoryShare)+1 || got.MemoryLimit < 64<<20 {
			t.Fatalf("derived %d from %q; the machine has %d bytes", got.MemoryLimit, got.LimitFrom, machine)
		}
		if l := debug.SetMemoryLimit(-1); l != got.MemoryLimit {
			t.Fatalf("runtime limit %d, reported %d", l, got.MemoryLimit)
		}
	})
}

func TestValidateRuntime(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  RuntimeConfig
		bad  string // "" = valid
	}{
		{"defaults", RuntimeConfig{GOGC: 100}, ""},
		{"a limit and a lower GOGC", RuntimeConfig{MemoryLimit: 2 << 30, GOGC: 25}, ""},
		{"smallest limit", RuntimeConfig{MemoryLimit: 64 << 20, GOGC: 10}, ""},
		{"negative limit", RuntimeConfig{MemoryLimit: -1, GOGC: 100}, "must not be negative"},
		{"tiny limit", RuntimeConfig{MemoryLimit: 1 << 20, GOGC: 100}, "below 64MiB"},
		{"GOGC 0", RuntimeConfig{GOGC: 0}, "runtime.gogc must be 10..1000"},
		{"GOGC too high", RuntimeConfig{GOGC: 5000}, "runtime.gogc must be 10..1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validateRuntime(tc.cfg)
			if tc.bad == "" && err != nil || tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)) {
				t.Fatalf("validate(%+v) = %v, want %q", tc.cfg, err, tc.bad)
			}
		})
	}
}

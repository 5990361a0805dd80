package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

var runtimeLine = regexp.MustCompile(`msg="go runtime memory settings" memory_limit=(\d+) memory_limit_from=(\S+) gogc=(-?\d+) gogc_from=(\S+)`)

// The binary applies the Go runtime's memory settings and logs them with
// where each came from: derived from the machine (or container) by
// default, from the config's runtime section, and GOMEMLIMIT and GOGC in
// the environment over both.
func TestBinary_RuntimeMemorySettings(t *testing.T) {
	machine := memTotal(t)
	for _, tc := range []struct {
		name      string
		env       map[string]string
		extra     string
		limit     string // "" = derived: checked against the machine's memory
		limitFrom string
		gogc      string
		gogcFrom  string
	}{
		{"derived by default", nil, "", "", "cgroup|machine", "100", "config"},
		{"from the config", nil, "runtime:\n  memory_limit: 1GiB\n  gogc: 50\n", "1073741824", "config", "50", "config"},
		{"the environment wins", map[string]string{"GOMEMLIMIT": "512MiB", "GOGC": "75"},
			"runtime:\n  memory_limit: 1GiB\n  gogc: 50\n", "536870912", "GOMEMLIMIT", "75", "GOGC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"GOMEMLIMIT", "GOGC"} {
				t.Setenv(k, tc.env[k]) // "" is unset for the runtime and the broker
			}
			p := mqtttest.StartBinary(t, mqtttest.PlainBinary(t), mqtttest.WriteConfig(t, t.TempDir(), tc.extra))
			m := runtimeLine.FindStringSubmatch(p.Log())
			if m == nil {
				t.Fatalf("no runtime settings line in the log:\n%s", p.Log())
			}
			if !regexp.MustCompile("^("+tc.limitFrom+")$").MatchString(m[2]) || m[3] != tc.gogc || m[4] != tc.gogcFrom {
				t.Fatalf("logged %q, want memory_limit_from %s, gogc %s from %s", m[0], tc.limitFrom, tc.gogc, tc.gogcFrom)
			}
			limit, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.limit != "" && m[1] != tc.limit:
				t.Fatalf("memory_limit %s, want %s", m[1], tc.limit)
			case tc.limit == "" && (limit > machine*9/10+4096 || limit < 64<<20):
				t.Fatalf("derived memory_limit %d; the machine has %d bytes, so at most 90%% of that", limit, machine)
			}
		})
	}
}

// memTotal is the machine's memory in bytes (/proc/meminfo).
func memTotal(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatalf("this test reads the machine's memory from /proc/meminfo: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no MemTotal in /proc/meminfo")
	return 0
}

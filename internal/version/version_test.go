package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := func(modified string) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef"},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: modified},
		}}
	}
	tests := []struct {
		name   string
		linked Info
		bi     *debug.BuildInfo
		want   Info
	}{
		{"linker flags win over build info", Info{Version: "v1.2.3", Commit: "feedface", Date: "2026-02-03T00:00:00Z"}, vcs("true"),
			Info{Version: "v1.2.3", Commit: "feedface", Date: "2026-02-03T00:00:00Z", GoVersion: "go1.99.1"}},
		{"plain go build of a clean checkout", Info{}, vcs("false"),
			Info{Version: "dev", Commit: "0123456789abcdef", Date: "2026-01-02T03:04:05Z", GoVersion: "go1.99.1"}},
		{"plain go build of a changed checkout is marked dirty", Info{}, vcs("true"),
			Info{Version: "dev", Commit: "0123456789abcdef-dirty", Date: "2026-01-02T03:04:05Z", GoVersion: "go1.99.1"}},
		{"go install module@version keeps the module version", Info{}, &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v0.4.0"}},
			Info{Version: "v0.4.0", Commit: "unknown", Date: "unknown", GoVersion: "go1.99.1"}},
		{"no build info at all", Info{}, nil,
			Info{Version: "dev", Commit: "unknown", Date: "unknown", GoVersion: runtime.Version()}},
		{"only the version linked", Info{Version: "v2.0.0"}, vcs("false"),
			Info{Version: "v2.0.0", Commit: "0123456789abcdef", Date: "2026-01-02T03:04:05Z", GoVersion: "go1.99.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resolve(tt.linked, tt.bi); got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// A test binary has build info but no linker flags: nothing may be empty.
func TestGetNeverEmpty(t *testing.T) {
	i := Get()
	if i.Version == "" || i.Commit == "" || i.Date == "" || !strings.HasPrefix(i.GoVersion, "go") {
		t.Fatalf("incomplete: %+v", i)
	}
	if s := i.String(); !strings.Contains(s, i.Version) || !strings.Contains(s, i.GoVersion) {
		t.Fatalf("String() = %q", s)
	}
}

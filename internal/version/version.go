package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the linker: go build -ldflags "-X <this package>.version=v1.2.3 ...".
// They are variables, not constants, because -X can only set variables.
var (
	version string
	commit  string
	date    string
)

// Info is one build's identity.
type Info struct {
	Version   string // git describe --tags --always --dirty, or "dev"
	Commit    string // the full commit hash, "-dirty" appended when the tree had changes
	Date      string // the source's date, RFC 3339: the commit time (see the Makefile), or "unknown"
	GoVersion string // the toolchain that built the binary
}

// Get returns this binary's Info.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return resolve(Info{Version: version, Commit: commit, Date: date}, bi)
}

// resolve fills what the linker did not set from the toolchain's build
// info (nil when the binary has none).
func resolve(linked Info, bi *debug.BuildInfo) Info {
	out := linked
	out.GoVersion = runtime.Version()
	settings := map[string]string{}
	if bi != nil {
		out.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
	}
	if out.Version == "" {
		// "go install module@v1.2.3" records the module version; a build
		// from a checkout records "(devel)".
		if bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			out.Version = bi.Main.Version
		} else {
			out.Version = "dev"
		}
	}
	if out.Commit == "" {
		out.Commit = settings["vcs.revision"]
		if out.Commit == "" {
			out.Commit = "unknown"
		} else if settings["vcs.modified"] == "true" {
			out.Commit += "-dirty"
		}
	}
	if out.Date == "" {
		out.Date = settings["vcs.time"]
		if out.Date == "" {
			out.Date = "unknown"
		}
	}
	return out
}

// String is the one-line form: "v1.2.3 (commit abc, date
// 2026-01-02T03:04:05Z, go1.26.8)".
func (i Info) String() string {
	return fmt.Sprintf("%s (commit %s, date %s, %s)", i.Version, i.Commit, i.Date, i.GoVersion)
}

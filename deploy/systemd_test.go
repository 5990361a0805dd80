package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

const (
	unitFile      = "systemd/inboxmq.service"
	installedPath = "/usr/local/bin/inboxmq" // where the unit expects the binary
)

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not found: `make deps` installs it (Debian package systemd)")
	}
	return p
}

// testableUnit writes a copy of the unit whose ExecStart names the binary
// `make build` just produced instead of installedPath: systemd-analyze
// verify checks that the ExecStart binary exists, and this machine has
// not installed inboxmq. Nothing else in the copy changes.
func testableUnit(t *testing.T, edit func(string) string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(mqtttest.ModuleRoot(t), "deploy", unitFile))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	execStart := "\nExecStart=" + installedPath + " "
	if strings.Count(text, execStart) != 1 {
		t.Fatalf("%s: want one %q line", unitFile, strings.TrimSpace(execStart))
	}
	text = strings.Replace(text, execStart, "\nExecStart="+mqtttest.ShippedBinary(t)+" ", 1)
	if edit != nil {
		text = edit(text)
	}
	path := filepath.Join(t.TempDir(), "inboxmq.service") // verify wants the unit's own name
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// verifyUnit runs systemd-analyze verify and returns what it complained
// about. It exits 0 on unknown keys and bad values (it only warns), so any
// output counts as a complaint.
func verifyUnit(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(systemdAnalyze(t), "verify", path).CombinedOutput()
	if err != nil {
		return string(out) + err.Error()
	}
	return string(bytes.TrimSpace(out))
}

var exposureLine = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// exposure is systemd-analyze security's score for the unit: 0 is fully
// locked down, 10 is a unit without any hardening.
func exposure(t *testing.T, path string) float64 {
	t.Helper()
	out, err := exec.Command(systemdAnalyze(t), "security", "--offline=true", "--no-pager", path).CombinedOutput()
	m := exposureLine.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return score
}

// maxExposure is the score the unit must stay under: systemd calls up to
// 2.0 "OK"; the unit scores 1.5 today.
const maxExposure = 2.0

// The systemd unit passes systemd-analyze verify without a warning and
// stays hardened.
func TestSystemdUnit(t *testing.T) {
	unit := testableUnit(t, nil)
	if complaints := verifyUnit(t, unit); complaints != "" {
		t.Errorf("systemd-analyze verify:\n%s", complaints)
	}
	if score := exposure(t, unit); score > maxExposure {
		t.Errorf("systemd-analyze security: exposure %.1f, want at most %.1f", score, maxExposure)
	}
	settings := map[string][]string{}
	for _, line := range strings.Split(readFile(t, unit), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			settings[k] = append(settings[k], v)
		}
	}
	for key, want := range map[string]string{
		"User": "inboxmq", "DynamicUser": "no", "StateDirectory": "inboxmq", "WorkingDirectory": "/var/lib/inboxmq",
		"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
		"CapabilityBoundingSet": "", "AmbientCapabilities": "", "LimitNOFILE": "1048576",
		"ExecReload": "/bin/kill -HUP $MAINPID", "Restart": "on-failure", "KillSignal": "SIGTERM",
	} {
		if got := settings[key]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want %q", key, got, want)
		}
	}
	// The drain after SIGTERM must have time before systemd's SIGKILL.
	stop, err := time.ParseDuration(strings.Join(settings["TimeoutStopSec"], ""))
	if err != nil || stop < 30*time.Second {
		t.Errorf("TimeoutStopSec=%v (%v), want at least 30s for the graceful drain", settings["TimeoutStopSec"], err)
	}
}

// The two checks see a broken or unhardened unit.
func TestSystemdUnitChecksCatchDrift(t *testing.T) {
	typo := testableUnit(t, func(s string) string { return strings.Replace(s, "ProtectHome=yes", "ProtectHomes=yes", 1) })
	if complaints := verifyUnit(t, typo); !strings.Contains(complaints, "ProtectHomes") {
		t.Errorf("a misspelt key passed verify: %q", complaints)
	}
	badValue := testableUnit(t, func(s string) string { return strings.Replace(s, "ProtectSystem=strict", "ProtectSystem=strikt", 1) })
	if complaints := verifyUnit(t, badValue); complaints == "" {
		t.Error("a bad value passed verify")
	}
	bare := testableUnit(t, func(s string) string {
		head, _, _ := strings.Cut(s, "# Hardening:")
		return head + "\n[Install]\nWantedBy=multi-user.target\n"
	})
	if score := exposure(t, bare); score <= maxExposure {
		t.Errorf("a unit without its hardening scores %.1f, within the limit %.1f", score, maxExposure)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// Tests of the binary as it ships: built by `make build`.

func dynamicNeeds(t *testing.T, path string) string {
	t.Helper()
	why, err := mqtttest.DynamicLinking(path)
	if err != nil {
		t.Fatal(err)
	}
	return why
}

// `make build` yields a static binary: it runs FROM scratch and on any
// Linux. Pebble's zstd would link libc if cgo crept back in.
func TestShippedBinaryIsStatic(t *testing.T) {
	tests := []struct {
		name       string
		path       string
		wantStatic bool
	}{
		{"make build", mqtttest.ShippedBinary(t), true},
		// The check itself must see a dynamic binary: Debian's shell is one.
		{"/bin/sh (deny row)", "/bin/sh", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			why := dynamicNeeds(t, tt.path)
			if tt.wantStatic && why != "" {
				t.Fatalf("%s is not static: %s", tt.path, why)
			}
			if !tt.wantStatic && why == "" {
				t.Fatalf("%s looks static; the check does not see dynamic linking", tt.path)
			}
		})
	}
}

var versionOutput = regexp.MustCompile(`^inboxmq (\S+)\ncommit: ([0-9a-f]{40}(?:-dirty)?)\ndate:   (\S+)\ngo:     (\S+)\n$`)

// shippedVersion runs "inboxmq ARGS" and parses its output: exit 0, all on
// stdout, nothing on stderr.
func shippedVersion(t *testing.T, args ...string) (ver, commit, date, goVersion string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(mqtttest.ShippedBinary(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("inboxmq %v: %v\n%s", args, err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Fatalf("inboxmq %v wrote to stderr: %q", args, stderr.String())
	}
	m := versionOutput.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("inboxmq %v: unexpected output:\n%s", args, stdout.String())
	}
	return m[1], m[2], m[3], m[4]
}

// The Makefile stamps the version from git describe, the commit and the
// commit's date; "version" and "--version" print the same.
func TestShippedBinaryVersion(t *testing.T) {
	ver, commit, date, goVersion := shippedVersion(t, "version")
	describe, err := exec.Command("git", "describe", "--tags", "--always").Output()
	if err != nil {
		t.Fatalf("git describe: %v", err)
	}
	if !strings.HasPrefix(ver, strings.TrimSpace(string(describe))) {
		t.Errorf("version %q does not come from git describe (%q)", ver, bytes.TrimSpace(describe))
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse: %v", err)
	}
	if !strings.HasPrefix(commit, strings.TrimSpace(string(head))) {
		t.Errorf("commit %q is not HEAD (%s)", commit, bytes.TrimSpace(head))
	}
	if _, err := time.Parse(time.RFC3339, date); err != nil {
		t.Errorf("date %q: %v", date, err)
	}
	if goVersion != runtime.Version() {
		t.Errorf("go %q, want %q (the toolchain running the tests)", goVersion, runtime.Version())
	}
	for _, args := range [][]string{{"--version"}, {"-version"}} {
		v, c, d, g := shippedVersion(t, args...)
		if v != ver || c != commit || d != date || g != goVersion {
			t.Errorf("%v prints %s %s %s %s, version prints %s %s %s %s", args, v, c, d, g, ver, commit, date, goVersion)
		}
	}
	cmd := exec.Command(mqtttest.ShippedBinary(t), "version", "extra")
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != 2 {
		t.Errorf("version with an argument: exit %d (%v), want 2", cmd.ProcessState.ExitCode(), err)
	}
}

// A running node says which build it is: in its start log line and as
// inboxmq_build_info on /metrics (the admin listener), with what
// "inboxmq version" prints.
func TestShippedBinaryBuildInfo(t *testing.T) {
	ver, commit, _, goVersion := shippedVersion(t, "version")
	p := mqtttest.StartBinary(t, mqtttest.ShippedBinary(t), mqtttest.WriteConfig(t, t.TempDir()))
	if !strings.Contains(p.Log(), `version="`+ver+" (commit "+commit) {
		t.Errorf("the start log line does not carry the version %s:\n%s", ver, p.Log())
	}
	resp, err := http.Get("http://" + p.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := `inboxmq_build_info{commit="` + commit + `",goversion="` + goVersion + `",version="` + ver + `"} 1`
	if !strings.Contains(string(body), want+"\n") {
		t.Fatalf("/metrics has no %s; build_info lines:\n%s", want, grepLines(string(body), "inboxmq_build_info"))
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// "inboxmq healthcheck" is the image's HEALTHCHECK: exit 0 only when the
// URL answers 200.
func TestHealthcheckCommand(t *testing.T) {
	p := mqtttest.StartBinary(t, mqtttest.ShippedBinary(t), mqtttest.WriteConfig(t, t.TempDir()))
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"status":"shutting down"}`, http.StatusServiceUnavailable)
	}))
	defer unavailable.Close()
	redirect := httptest.NewServer(http.RedirectHandler("http://"+p.HTTP+"/healthz", http.StatusFound))
	defer redirect.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout for 0, stderr otherwise
	}{
		{"the broker's /healthz", []string{"--url", "http://" + p.HTTP + "/healthz"}, 0, "healthy"},
		{"the broker's /readyz", []string{"--url", "http://" + p.HTTP + "/readyz"}, 0, "200 OK"},
		{"deny: 503", []string{"--url", unavailable.URL + "/healthz"}, 1, "503"},
		{"deny: nothing listening", []string{"--url", "http://" + closedAddr + "/healthz", "--timeout", "2s"}, 1, "unhealthy"},
		{"deny: a redirect is not followed", []string{"--url", redirect.URL}, 1, "302"},
		{"deny: not http", []string{"--url", "ftp://" + p.HTTP + "/healthz"}, 2, "want an http"},
		{"deny: no host", []string{"--url", "/healthz"}, 2, "want an http"},
		{"deny: zero timeout", []string{"--timeout", "0s"}, 2, "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(mqtttest.ShippedBinary(t), append([]string{"healthcheck"}, tt.args...)...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			_ = cmd.Run() // the exit code is the answer
			if code := cmd.ProcessState.ExitCode(); code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			out := stderr.String()
			if tt.wantCode == 0 {
				out = stdout.String()
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Fatalf("output %q does not contain %q", out, tt.wantOut)
			}
		})
	}
}

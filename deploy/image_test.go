//go:build image

package deploy

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// The container image, built by `make image` with podman and run as
// users would. `make test-image` runs this (it installs podman and runc
// first); it is not part of `make test`, see the Makefile.

const imageName = "localhost/inboxmq-imagetest"

func podmanPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman is not installed, so the image was neither built nor run (this test did not run): `make test-image` installs it")
	}
	return p
}

func podman(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(podmanPath(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("podman %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), err
}

func mustPodman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := podman(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// buildImage runs `make image` with podman and returns the image's
// reference; the image is removed when the test ends.
func buildImage(t *testing.T) string {
	t.Helper()
	podmanPath(t)
	start := time.Now()
	cmd := exec.Command("make", "--no-print-directory", "image", "IMAGE="+imageName, "IMAGE_TAG=test", "CONTAINER=podman")
	cmd.Dir = mqtttest.ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Logf("make image took %s", time.Since(start).Round(100*time.Millisecond))
	ref := imageName + ":test"
	t.Cleanup(func() { _, _ = podman(t, "rmi", "--force", ref, imageName+":latest") })
	return ref
}

// imageConfig is what `podman image inspect` says of the image.
type imageConfig struct {
	Config struct {
		User         string
		ExposedPorts map[string]struct{}
		Volumes      map[string]struct{}
		Entrypoint   []string
		Cmd          []string
		WorkingDir   string
		Healthcheck  *struct{ Test []string }
	}
	Healthcheck *struct{ Test []string } // podman puts it here, docker under Config
}

func TestImage(t *testing.T) {
	ref := buildImage(t)
	var inspected []imageConfig
	if err := json.Unmarshal([]byte(mustPodman(t, "image", "inspect", ref)), &inspected); err != nil || len(inspected) != 1 {
		t.Fatalf("image inspect: %v (%d images)", err, len(inspected))
	}
	img := inspected[0]
	hc := img.Healthcheck
	if hc == nil {
		hc = img.Config.Healthcheck
	}
	c := img.Config
	switch {
	case c.User != "65532:65532":
		t.Errorf("user %q, want 65532:65532 (not root)", c.User)
	case !slices.Equal(c.Entrypoint, []string{"/inboxmq"}) || !slices.Equal(c.Cmd, []string{"run", "--config", "/etc/inboxmq/inboxmq.yaml"}):
		t.Errorf("entrypoint %v, cmd %v", c.Entrypoint, c.Cmd)
	case hc == nil || !slices.Equal(hc.Test, []string{"CMD", "/inboxmq", "healthcheck"}):
		t.Errorf("healthcheck %+v, want CMD /inboxmq healthcheck", hc)
	}
	if _, ok := c.Volumes["/data"]; !ok {
		t.Errorf("no /data volume: %v", c.Volumes)
	}
	for _, p := range publicPorts {
		if _, ok := c.ExposedPorts[fmt.Sprintf("%d/tcp", defaultPorts(t)[p])]; !ok {
			t.Errorf("port %s (%d) not exposed: %v", p, defaultPorts(t)[p], c.ExposedPorts)
		}
	}

	t.Run("podman run", func(t *testing.T) { runContainer(t, ref) })
	t.Run("unpacked filesystem", func(t *testing.T) { runUnpacked(t, ref) })
}

// runFlags make `podman run` work in sandboxes as well as on a normal
// host: this machine refuses to raise a process's limits (crun's and
// runc's setrlimit to podman's defaults fails with EPERM) and crun refuses
// its hybrid cgroups. The current hard limits are always allowed, and
// runc (when installed) copes with hybrid cgroups.
func runFlags() []string {
	var flags []string
	if _, err := exec.LookPath("runc"); err == nil {
		flags = append(flags, "--runtime", "runc")
	} else if _, err := os.Stat("/usr/sbin/runc"); err == nil {
		flags = append(flags, "--runtime", "/usr/sbin/runc")
	}
	var nofile syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err == nil {
		flags = append(flags, "--ulimit", fmt.Sprintf("nofile=%d:%d", nofile.Max, nofile.Max))
	}
	return append(flags, "--ulimit", "nproc=4096:4096")
}

// runContainer runs the image, round-trips a message through it with real
// MQTT clients, runs its HEALTHCHECK, and stops it with SIGTERM.
func runContainer(t *testing.T, ref string) {
	name := fmt.Sprintf("inboxmq-imagetest-%d", time.Now().UnixNano())
	args := append([]string{"run", "--detach", "--name", name}, runFlags()...)
	args = append(args, "-p", "127.0.0.1::1883", "-p", "127.0.0.1::8080", "-e", broker.SecretEnv+"="+mqtttest.Secret, ref)
	if _, err := podman(t, args...); err != nil {
		// The path this machine cannot take: say so; "unpacked
		// filesystem" still checks the image's contents.
		t.Logf("PATH TAKEN: podman run was refused, so only the unpacked filesystem is tested: %v", err)
		_, _ = podman(t, "rm", "--force", name)
		return
	}
	t.Logf("PATH TAKEN: podman run (%s)", strings.Join(runFlags(), " "))
	t.Cleanup(func() {
		if t.Failed() { // the broker logs to stderr, which podman logs passes on
			logs, _ := exec.Command(podmanPath(t), "logs", name).CombinedOutput()
			t.Logf("container log:\n%s", logs)
		}
		_, _ = podman(t, "rm", "--force", name)
	})
	mqttAddr := mustPodman(t, "port", name, "1883/tcp")
	httpAddr := mustPodman(t, "port", name, "8080/tcp")
	waitHealthy(t, "http://"+httpAddr+"/healthz", nil)

	roundTrip(t, mqttAddr)
	if out, err := podman(t, "healthcheck", "run", name); err != nil {
		t.Errorf("the image's HEALTHCHECK failed: %v %s", err, out)
	}
	if user := mustPodman(t, "top", name, "huser"); !strings.Contains(user, "65532") {
		t.Errorf("the broker does not run as 65532:\n%s", user)
	}
	mustPodman(t, "stop", "--time", "30", name)
	if code := mustPodman(t, "inspect", name, "--format", "{{.State.ExitCode}}"); code != "0" {
		t.Errorf("exit code %s after SIGTERM, want 0 (a graceful shutdown)", code)
	}
}

// runUnpacked exports the image's filesystem and checks it, then runs the
// binary from it on this host against real clients: what a machine that
// refuses containers can still prove about the image.
func runUnpacked(t *testing.T, ref string) {
	t.Logf("PATH TAKEN: the image's filesystem, exported with podman create + export")
	id := mustPodman(t, "create", ref)
	defer podman(t, "rm", "--force", id)
	dir := t.TempDir()
	var tarball bytes.Buffer
	export := exec.Command(podmanPath(t), "export", id)
	export.Stdout = &tarball
	if err := export.Run(); err != nil {
		t.Fatalf("podman export: %v", err)
	}
	untar := exec.Command("tar", "-x", "-C", dir)
	untar.Stdin = &tarball
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("untar: %v\n%s", err, out)
	}

	if why, err := mqtttest.DynamicLinking(filepath.Join(dir, "inboxmq")); err != nil || why != "" {
		t.Errorf("the image's binary is not static: %s %v", why, err)
	}
	if passwd := readFile(t, filepath.Join(dir, "etc", "passwd")); !strings.Contains(passwd, ":65532:65532:") {
		t.Errorf("/etc/passwd names no user 65532:\n%s", passwd)
	}
	if !x509.NewCertPool().AppendCertsFromPEM([]byte(readFile(t, filepath.Join(dir, "etc", "ssl", "certs", "ca-certificates.crt")))) {
		t.Error("the CA bundle holds no certificate: TLS to Redis would fail")
	}
	t.Setenv(broker.SecretEnv, mqtttest.Secret)
	cfg, err := broker.LoadConfig(filepath.Join(dir, "etc", "inboxmq", "inboxmq.yaml"))
	if err != nil {
		t.Fatalf("the image's config: %v", err)
	}
	if cfg.DataDir != "/data" {
		t.Errorf("the image's data_dir %q is not its /data volume", cfg.DataDir)
	}

	// The image's own config writes to /data; on this host the binary runs
	// with a test config in a temporary directory instead.
	bin := filepath.Join(dir, "inboxmq")
	p := mqtttest.StartBinary(t, bin, mqtttest.WriteConfig(t, t.TempDir()))
	roundTrip(t, p.MQTTAddr)
	out, err := exec.Command(bin, "healthcheck", "--url", "http://"+p.HTTP+"/healthz").CombinedOutput()
	if err != nil {
		t.Errorf("healthcheck from the image: %v\n%s", err, out)
	}
	if code := p.Stop(t, 30*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}

// roundTrip sends a message from one user to another, connected over MQTT.
func roundTrip(t *testing.T, mqttAddr string) {
	t.Helper()
	bob := mqtttest.MustV3(t, mqttAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	alice := mqtttest.MustV3(t, mqttAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"through the image"}`)
	if e := bob.Inbox.Next(t, 15*time.Second); e.Str("ct") != "through the image" || e.Str("nickname") != "nick-10001" {
		t.Fatalf("got %s", e.Raw)
	}
}

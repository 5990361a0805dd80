package dirlock_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inboxmq/inboxmq/internal/dirlock"
)

// A second Acquire of a held directory is refused with the holder's pid;
// after Release it succeeds. (Two processes: cmd/inboxmq's tests.)
func TestAcquireRefusesSecondOwner(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := dirlock.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dirlock.Acquire(dir)
	var inUse *dirlock.InUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("second Acquire = %v, want *InUseError", err)
	}
	want := fmt.Sprintf("data dir %s is in use by another inboxmq (pid %d)", dir, os.Getpid())
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, dirlock.PIDFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file after Release: %v, want it gone", err)
	}
	if err := first.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	again, err := dirlock.Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	if err := again.Release(); err != nil {
		t.Fatal(err)
	}
}

// Without a readable pid file the error still says the dir is in use.
func TestInUseWithoutPIDFile(t *testing.T) {
	dir := t.TempDir()
	l, err := dirlock.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if err := os.WriteFile(filepath.Join(dir, dirlock.PIDFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = dirlock.Acquire(dir)
	if err == nil || !strings.Contains(err.Error(), "in use by another inboxmq (pid unknown") {
		t.Fatalf("Acquire = %v, want in use, pid unknown", err)
	}
}

// A stale pid file left by a killed process does not block: only the lock
// counts.
func TestStalePIDFileIgnored(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, dirlock.PIDFile), []byte("999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := dirlock.Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire with a stale pid file: %v", err)
	}
	defer l.Release()
	b, err := os.ReadFile(filepath.Join(dir, dirlock.PIDFile))
	if err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Errorf("pid file = %q, %v; want this process's pid", b, err)
	}
}

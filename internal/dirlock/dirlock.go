package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gofrs/flock"
)

// File names inside the locked directory.
const (
	LockFile = "inboxmq.lock"
	PIDFile  = "inboxmq.pid"
)

// InUseError says another process holds the lock.
type InUseError struct {
	Dir string
	PID int // 0 when its pid file could not be read
}

func (e *InUseError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("data dir %s is in use by another inboxmq (pid unknown: %s is missing)", e.Dir, filepath.Join(e.Dir, PIDFile))
	}
	return fmt.Sprintf("data dir %s is in use by another inboxmq (pid %d)", e.Dir, e.PID)
}

// Lock is a held directory lock.
type Lock struct {
	dir string
	fl  *flock.Flock
}

// Acquire creates dir when missing and locks it, or returns an
// *InUseError when another process (or another Lock in this one) holds it.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	fl := flock.New(filepath.Join(dir, LockFile), flock.SetPermissions(0o600))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	if !ok {
		return nil, &InUseError{Dir: dir, PID: readPID(filepath.Join(dir, PIDFile))}
	}
	l := &Lock{dir: dir, fl: fl}
	if err := writePID(filepath.Join(dir, PIDFile)); err != nil {
		return nil, errors.Join(err, l.Release())
	}
	return l, nil
}

// Release removes the pid file and unlocks. It is safe to call twice.
func (l *Lock) Release() error {
	if l == nil || !l.fl.Locked() {
		return nil
	}
	var errs []error
	if err := os.Remove(filepath.Join(l.dir, PIDFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := l.fl.Unlock(); err != nil {
		errs = append(errs, fmt.Errorf("unlock data dir %s: %w", l.dir, err))
	}
	return errors.Join(errs...)
}

// writePID replaces the pid file whole (a rename), so a reader never sees
// half a number.
func writePID(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

package pebblestore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

// Checkpoint writes a consistent copy of the open store to dir, which
// must not exist: every write applied before the call, synced or not, and
// none after. Pebble hard-links the immutable sstables when dir is on the
// same file system (so the copy costs little space until compactions
// replace them) and copies the WAL and MANIFEST. Writers are not paused.
func (s *Store) Checkpoint(dir string) error {
	if err := s.life.Enter(); err != nil {
		return err
	}
	defer s.life.Exit()
	// WithFlushedWAL: the unsynced writes (cursors, read marks) reach the
	// WAL file before it is copied.
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("pebblestore: checkpoint to %s: %w", dir, err)
	}
	return nil
}

// CopyClosed copies the store in src, which no process may have open, to
// dst, which must not exist. It holds the store's own lock while it copies,
// so it fails rather than copy a store in use, and it changes nothing in
// src: unlike Open it neither replays the WAL nor upgrades the layout, so
// the copy is the store exactly as the last process left it (a copy taken
// before an upgrade still opens with the build that wrote it).
func CopyClosed(src, dst string) (err error) {
	if _, err := os.Stat(filepath.Join(src, "LOCK")); err != nil {
		return fmt.Errorf("pebblestore: %s holds no store: %w", src, err)
	}
	lock, err := vfs.Default.Lock(filepath.Join(src, "LOCK"))
	if err != nil {
		return fmt.Errorf("pebblestore: %s is in use: %w", src, err)
	}
	defer func() { err = errors.Join(err, lock.Close()) }()
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pebblestore: copy to %s: %w", dst, errors.Join(os.ErrExist, err))
	}
	if err := os.MkdirAll(dst, 0o750); err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dst) // a partial copy must not pass for a backup
		}
	}()
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	for _, e := range entries {
		if e.Name() == "LOCK" {
			continue
		}
		if !e.Type().IsRegular() {
			return fmt.Errorf("pebblestore: %s: unexpected %s in a store", filepath.Join(src, e.Name()), e.Type())
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return syncDir(dst)
}

func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	defer func() { err = errors.Join(err, out.Close()) }()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("pebblestore: copy %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

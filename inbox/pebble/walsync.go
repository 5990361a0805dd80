package pebblestore

import (
	"strings"
	"time"

	"github.com/cockroachdb/pebble/vfs"
)

// walTimingFS is the default file system with the syncs of the WAL timed:
// every synced write (a message's PUBACK, a SUBACK) waits for one, so
// their latency is the disk's share of a message's delivery latency, and
// what an operator looks at when p99 rises (etcd's wal_fsync_duration is
// the same measure).
type walTimingFS struct {
	vfs.FS
	observe func(time.Duration)
}

// isWAL reports whether name is a write-ahead log file (NNNNNN.log).
func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

func (fs walTimingFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !isWAL(name) {
		return f, err
	}
	return walFile{File: f, observe: fs.observe}, nil
}

func (fs walTimingFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	return fs.wrap(name, f, err)
}

// ReuseForWrite is how Pebble recycles an old WAL file for the next one.
func (fs walTimingFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname)
	return fs.wrap(newname, f, err)
}

type walFile struct {
	vfs.File
	observe func(time.Duration)
}

func (f walFile) timed(sync func() error) error {
	start := time.Now()
	err := sync()
	f.observe(time.Since(start))
	return err
}

func (f walFile) Sync() error     { return f.timed(f.File.Sync) }
func (f walFile) SyncData() error { return f.timed(f.File.SyncData) }

func (f walFile) SyncTo(length int64) (fullSync bool, err error) {
	start := time.Now()
	fullSync, err = f.File.SyncTo(length)
	f.observe(time.Since(start))
	return fullSync, err
}

package pebblestore

import (
	"errors"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/inboxmq/inboxmq/inbox"
)

// Opening the store: its tuning, Pebble's options, and the layout version.

// cacheSize is Pebble's block cache. Reads are mostly of recent messages
// still in the memtable, so a small cache is enough.
const cacheSize = 8 << 20

// DefaultMemTableSize is Pebble's memtable size unless Tuning says
// otherwise: large enough that flushes and compactions stay out of the
// write path's profile (with Pebble's default of 4 MiB compaction took 19%
// of a dm run's CPU). Pebble keeps up to two of them (one filling, one
// flushed and kept for reuse), allocated by C's allocator in a cgo build
// and on the Go heap in the static release build (Pebble's manual
// package without cgo), where the Go memory limit counts them.
const DefaultMemTableSize = 64 << 20

// MaxWALSyncInterval bounds Tuning.WALSyncInterval: every synced write may
// wait that long.
const MaxWALSyncInterval = 10 * time.Millisecond

// Tuning sizes the store's memory and paces its fsyncs. Zero values take
// the defaults.
type Tuning struct {
	MemTableSize int64 // bytes; DefaultMemTableSize when 0
	// WALSyncInterval is the least time between two syncs of the WAL
	// (Pebble's WALMinSyncInterval); 0, the default, syncs as soon as a
	// write asks. A sync asked for sooner waits for the rest of it, and
	// every write that arrives meanwhile shares it: at 2,000 direct
	// messages a second, 1 ms cut WAL syncs from 0.8 to 0.24 a message
	// and the broker's CPU per message by a quarter, for about 1.4 ms
	// more median latency (docs/performance.md, round six). Writes still
	// return only once synced. At most MaxWALSyncInterval.
	WALSyncInterval time.Duration
	// OnWALSync, when set, is called with how long each sync of the WAL
	// took (walsync.go), from Pebble's WAL goroutine: it must be quick.
	OnWALSync func(time.Duration)
}

// Open opens (or creates) the store in dir with the default Tuning,
// upgrading a store written in layout 1 (see doc.go).
func Open(dir string, opts inbox.Options) (*Store, error) {
	return OpenTuned(dir, opts, Tuning{})
}

// OpenTuned opens (or creates) the store in dir.
func OpenTuned(dir string, opts inbox.Options, t Tuning) (*Store, error) {
	if opts.NodeID < 0 || opts.NodeID > 1023 {
		return nil, fmt.Errorf("pebblestore: open: node id %d out of range 0..1023", opts.NodeID)
	}
	if opts.MaxPerInbox < 0 {
		return nil, fmt.Errorf("pebblestore: open: negative MaxPerInbox %d", opts.MaxPerInbox)
	}
	if t.MemTableSize == 0 {
		t.MemTableSize = DefaultMemTableSize
	}
	if t.MemTableSize < 1<<20 || t.MemTableSize > 1<<30 {
		return nil, fmt.Errorf("pebblestore: open: memtable size %d out of range 1 MiB..1 GiB", t.MemTableSize)
	}
	if t.WALSyncInterval < 0 || t.WALSyncInterval > MaxWALSyncInterval {
		return nil, fmt.Errorf("pebblestore: open: WAL sync interval %s out of range 0..%s", t.WALSyncInterval, MaxWALSyncInterval)
	}
	cache := pebble.NewCache(cacheSize)
	defer cache.Unref() // the DB holds its own reference
	var fs vfs.FS = vfs.Default
	if t.OnWALSync != nil {
		fs = walTimingFS{FS: fs, observe: t.OnWALSync}
	}
	db, err := pebble.Open(dir, tuned(&pebble.Options{
		FS:                 fs,
		Cache:              cache,
		Logger:             quietLogger{},
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       uint64(t.MemTableSize),
		WALMinSyncInterval: func() time.Duration { return t.WALSyncInterval },
	}))
	if err != nil {
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	s := &Store{db: db, opts: opts, now: time.Now, heads: make(map[string]head), requests: make(map[string]requestStats), positions: make(map[string]position),
		keySeed: maphash.MakeSeed()}
	window, _ := opts.Dedupe()
	s.bucketMs = requestBucket(window)
	last, err := s.init()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("pebblestore: open %s: %w", dir, err), db.Close())
	}
	s.ids, s.idsBelow = inbox.NewIDGen(opts.NodeID, last), last
	return s, nil
}

// tuned sets the options measured in docs/performance.md. Every message
// is appended, read back within moments and then mostly left alone for
// the retention period, so the write path is what costs:
//   - a 64 MiB memtable (Pebble's default is 4 MiB) absorbs the head,
//     cursor and push-schedule keys that are rewritten or deleted within
//     seconds, so they never reach an sstable, and flushes are rarer;
//   - the upper levels, rewritten by every compaction, are not
//     compressed; the bottom levels, where the bulk of the retained
//     history ends up, still are;
//   - every level has a bloom filter (10 bits a key, about 1% false
//     positives), so looking up what does not exist (the session and
//     cursor of a device connecting for the first time) skips an
//     sstable's blocks instead of searching them. Pebble's default has
//     none. With one sstable in the block cache a miss went from 12.9 to
//     11.5 us (BenchmarkSession_MissAfterRestart); the gain is in the
//     reads a cold cache and more levels would make.
func tuned(o *pebble.Options) *pebble.Options {
	o.EnsureDefaults()
	for i := range o.Levels {
		if i < 3 {
			o.Levels[i].Compression = pebble.NoCompression
		}
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return o
}

// init checks or writes the layout version, upgrading a store of layout 1,
// 2 or 3, and returns the id stored under keyLastID: every id issued is at
// or below it.
func (s *Store) init() (lastID uint64, err error) {
	v, ok, err := s.getUint("layout version", keyVersion)
	switch {
	case err != nil:
		return 0, err
	case !ok:
		if err := s.db.Set(keyVersion, encodeUint(layoutVersion), pebble.Sync); err != nil {
			return 0, fmt.Errorf("write layout version: %w", err)
		}
	case v >= 1 && v <= 3:
		if v == 1 {
			if err := s.upgradeV1(); err != nil {
				return 0, fmt.Errorf("upgrade layout 1 to %d: %w", layoutVersion, err)
			}
		}
		// Layout 2 wrote every head with every append: it reads as layout
		// 3, whose heads may lag (heads.go). Every older layout keeps its
		// request records as layout 3 did; rewriting them marks the store
		// layout 4 before the first append, so a build of an older layout
		// refuses it rather than trusting a lagging head or missing the
		// records.
		if err := s.upgradeRequests(); err != nil {
			return 0, fmt.Errorf("upgrade layout %d to %d: %w", v, layoutVersion, err)
		}
	case v != layoutVersion:
		return 0, fmt.Errorf("layout version %d, this build reads %d", v, layoutVersion)
	}
	lastID, _, err = s.getUint("last id", keyLastID)
	return lastID, err
}

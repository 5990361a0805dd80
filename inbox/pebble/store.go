package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/inbox/internal/lifetime"
)

// Store is an inbox.Store in a Pebble database. Open one with Open.
type Store struct {
	db   *pebble.DB
	opts inbox.Options
	now  func() time.Time // time.Now; tests replace it

	// life keeps db open while it is used: every method holds it shared
	// for its whole run (an Append until its fsync is done), Close holds it
	// exclusively. Pebble panics on use after Close, so this is required.
	life lifetime.Gate

	// mu orders every write that adds or removes messages (Append,
	// Delete, retention). Under it: ids and Seqs are assigned, the batch
	// is built, reading what it removes, and applied, and heads is read or
	// written. So a reader holding mu sees every such write completed.
	mu  sync.Mutex
	ids *inbox.IDGen
	// idsBelow is the id stored under keyLastID: every id issued is at or
	// below it (see reserveIDsLocked).
	idsBelow uint64
	heads    map[string]head // uid -> held state, loaded on first use
	scratch  []byte          // key and value buffer for Append
	// requests counts the request records of inboxes, knows their oldest
	// and their keys (see requests.go), counted on first use.
	requests map[string]requestStats
	keySeed  maphash.Seed // of requestStats.keys
	bucketMs int64        // width of the request records' age buckets (requestBucket)
	// requestsSwept is the end of the newest bucket of request records
	// that expireRequests has dropped.
	requestsSwept int64

	// markMu makes the read-compare-write of SetCursor and MarkRead atomic
	// and guards positions.
	markMu sync.Mutex
	// positions caches cursor and read mark values by key, as written or
	// read, so the read-compare-write of a cursor (one per delivered
	// batch) reads the database only the first time. Nothing else writes
	// or deletes these keys while the store is open.
	positions map[string]position
	// pushMu serialises ClaimDuePushes (see pushes.go).
	pushMu sync.Mutex
	// sessMu makes the read-compare-write of session writes atomic and
	// keeps the expiry index in step with the sessions (see sessions.go).
	sessMu sync.Mutex
	// outMu makes the outbox's moves (claim, reschedule, delete) atomic.
	outMu sync.Mutex
	// blockMu makes a block list's count-then-add atomic, and orders the
	// changes of blockLists (see blocks.go).
	blockMu    sync.Mutex
	blockLists blockLists
}

// head is the held state of one inbox: held messages, the lowest of them
// first, and last, the highest Seq ever assigned; first is last+1 when none
// is held. Retention drops from the oldest end but Delete from anywhere, so
// first..last may have holes: held <= last+1-first.
type head struct {
	first, last, held uint64
}

var _ inbox.Store = (*Store)(nil)

// Close flushes the memtable and closes the database. It waits for
// methods in progress; later calls return an error wrapping inbox.ErrClosed.
func (s *Store) Close() error {
	err := s.life.Close(func() error {
		var errs []error
		if err := s.db.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("flush: %w", err))
		}
		if err := s.db.Close(); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("pebblestore: close: %w", err)
	}
	return nil
}

// drop is a number of messages of one inbox dropped by retention.
type drop struct {
	uid string
	n   int
}

// Append implements inbox.Store: Submit without a key or pushes.
func (s *Store) Append(ctx context.Context, msgs []inbox.Message) ([]inbox.Message, error) {
	r, err := s.Submit(ctx, inbox.Request{Msgs: msgs})
	return r.Msgs, err
}

// Submit implements inbox.Store. It returns after the batch is fsync'd.
// Entries of one call for the same uid get consecutive Seqs and share the
// id. The messages, the dedupe record and the push entries are one batch.
func (s *Store) Submit(ctx context.Context, req inbox.Request) (inbox.Receipt, error) {
	fail := func(err error) (inbox.Receipt, error) {
		return inbox.Receipt{}, fmt.Errorf("pebblestore: append: %w: %w", inbox.ErrNotStored, err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if len(req.Msgs) == 0 {
		return inbox.Receipt{}, nil
	}
	if len(req.Key) > inbox.MaxRequestKey {
		return fail(inbox.ErrBadRequestKey)
	}
	for i := range req.Msgs {
		if err := checkUID(req.Msgs[i].UID); err != nil {
			return fail(err)
		}
		if err := checkThread(req.Msgs[i].Thread()); err != nil {
			return fail(err)
		}
	}
	if err := s.life.Enter(); err != nil {
		return fail(err)
	}
	defer s.life.Exit()

	out := slices.Clone(req.Msgs)
	b := s.db.NewBatch()
	drops, dup, err := s.applyAppend(b, out, req)
	if err != nil {
		return inbox.Receipt{}, errors.Join(fmt.Errorf("pebblestore: append: %w: %w", inbox.ErrNotStored, err), b.Close())
	}
	if dup {
		// The original may still be waiting for its fsync: wait for it too.
		return inbox.Receipt{Msgs: out, Duplicate: true}, errors.Join(s.syncWAL(), b.Close())
	}
	// Wait for the fsync outside s.mu, so the next appenders can join it.
	if err := b.SyncWait(); err != nil {
		return inbox.Receipt{}, errors.Join(fmt.Errorf("pebblestore: append: sync: %w", err), b.Close())
	}
	if err := b.Close(); err != nil {
		return inbox.Receipt{}, fmt.Errorf("pebblestore: append: %w", err)
	}
	s.reportDrops(drops, "overflow")
	return inbox.Receipt{Msgs: out}, nil
}

// applyAppend assigns id, Time and Seqs to out, writes them, their thread
// index entries, the overflow deletes, the heads, the last id, req's
// dedupe record and push entries into b, and applies b without waiting
// for its fsync. When req is a duplicate it writes nothing, fills out
// from the record and returns dup.
func (s *Store) applyAppend(b *pebble.Batch, out []inbox.Message, req inbox.Request) (drops []drop, dup bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		if err != nil && req.Key != "" {
			// The records' state in s.requests may be ahead of the
			// database: counted again on next use.
			delete(s.requests, out[0].UID)
		}
	}()

	now := s.now()
	var found requestLookup // what req.Key has on disk
	if req.Key != "" {
		var err error
		if found, err = s.findRequestLocked(out, req, now); found.dup || err != nil {
			return nil, found.dup, err
		}
	}
	id := s.ids.Next(now)
	idStr := strconv.FormatUint(id, 10)
	ms := now.UnixMilli()

	// New heads, committed to s.heads only once b is applied. An Append
	// has one or two inboxes, so a slice beats a map.
	type touched struct {
		uid    string
		was, h head
	}
	var buf [2]touched
	heads := buf[:0]
	for i := range out {
		m := &out[i]
		j := slices.IndexFunc(heads, func(t touched) bool { return t.uid == m.UID })
		if j < 0 {
			h, err := s.headLocked(m.UID)
			if err != nil {
				return nil, false, err
			}
			heads = append(heads, touched{m.UID, h, h})
			j = len(heads) - 1
		}
		// With none held, first is already last+1: the Seq assigned now.
		heads[j].h.last++
		heads[j].h.held++
		m.Seq, m.ID, m.Time = heads[j].h.last, idStr, ms

		key := appendMsgKey(s.scratch[:0], m.UID, m.Seq)
		s.scratch = appendMessage(key, id, m)
		if err := b.Set(key, s.scratch[len(key):], nil); err != nil {
			return nil, false, fmt.Errorf("batch: %w", err)
		}
		if th := m.Thread(); th != "" {
			key := appendIndexKey(s.scratch[:0], m.UID, th, m.Seq)
			s.scratch = appendIndexValue(key, m.Kind, m.MsgType)
			if err := b.Set(key, s.scratch[len(key):], nil); err != nil {
				return nil, false, fmt.Errorf("batch: %w", err)
			}
		}
	}

	for i := range heads {
		t := &heads[i]
		overflow := false
		if keep := uint64(s.opts.MaxPerInbox); keep != 0 && t.h.held > keep {
			n := t.h.held - keep
			if err := s.dropOldestLocked(b, t.uid, &t.h, t.was, n, out); err != nil {
				return nil, false, err
			}
			drops = append(drops, drop{t.uid, int(n)})
			overflow = true
		}
		if !overflow && !headWriteDue(t.was, t.h) {
			continue // headLocked finds these appends (heads.go)
		}
		if err := b.Set(headKey(t.uid), encodeHead(t.h), nil); err != nil {
			return nil, false, fmt.Errorf("batch: %w", err)
		}
	}
	if req.Key != "" {
		if err := s.recordRequestLocked(b, out, req, found, now); err != nil {
			return nil, false, err
		}
	}
	for _, e := range inbox.PushEntries(out, req.PushAfter) {
		if err := b.Set(pushKey(e), nil, nil); err != nil {
			return nil, false, fmt.Errorf("batch: %w", err)
		}
	}
	below, err := s.reserveIDsLocked(b, id, now)
	if err != nil {
		return nil, false, err
	}

	if err := s.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		return nil, false, fmt.Errorf("apply: %w", err)
	}
	for _, t := range heads {
		s.heads[t.uid] = t.h
	}
	s.idsBelow = below
	return drops, false, nil
}

// dropOldestLocked writes into b the deletes of the n oldest messages held
// by uid, with their thread index entries, and moves h past them. was is
// uid's head before this Append: the messages above was.last are the new
// ones in out, which are in b but not yet in the database. s.mu must be held.
//
// Finding a dropped message's index entry takes its thread, so this reads
// the oldest messages: a short iterator from was.first, which usually
// finds them in the block cache.
func (s *Store) dropOldestLocked(b *pebble.Batch, uid string, h *head, was head, n uint64, out []inbox.Message) error {
	old := min(n, was.held) // how many of the dropped are in the database
	if old > 0 {
		it, err := s.db.NewIter(&pebble.IterOptions{
			LowerBound: appendMsgKey(nil, uid, was.first),
			UpperBound: appendMsgKey(nil, uid, was.last+1),
		})
		if err != nil {
			return fmt.Errorf("overflow of %s: %w", uid, err)
		}
		ok := it.First()
		for range old {
			if !ok {
				return errors.Join(fmt.Errorf("overflow of %s: %w: fewer messages than the %d held", uid, errCorrupt, was.held), it.Close())
			}
			if err := deleteMessage(b, uid, it.Key(), it.Value()); err != nil {
				return errors.Join(fmt.Errorf("overflow of %s: %w", uid, err), it.Close())
			}
			ok = it.Next()
		}
		h.first = was.last + 1
		if old < was.held {
			if !ok {
				return errors.Join(fmt.Errorf("overflow of %s: %w: fewer messages than the %d held", uid, errCorrupt, was.held), it.Close())
			}
			_, seq, err := parseMsgKey(it.Key())
			if err != nil {
				return errors.Join(fmt.Errorf("overflow of %s: %w", uid, err), it.Close())
			}
			h.first = seq
		}
		if err := it.Close(); err != nil {
			return fmt.Errorf("overflow of %s: %w", uid, err)
		}
	}
	if n > was.held {
		// The rest are the oldest new ones, Seqs was.last+1 through cut:
		// deleted in the same batch that sets them, which later wins.
		cut := was.last + (n - was.held)
		for i := range out {
			m := &out[i]
			if m.UID != uid || m.Seq > cut {
				continue
			}
			s.scratch = appendMsgKey(s.scratch[:0], uid, m.Seq)
			if err := b.Delete(s.scratch, nil); err != nil {
				return fmt.Errorf("batch: %w", err)
			}
			if th := m.Thread(); th != "" {
				s.scratch = appendIndexKey(s.scratch[:0], uid, th, m.Seq)
				if err := b.Delete(s.scratch, nil); err != nil {
					return fmt.Errorf("batch: %w", err)
				}
			}
		}
		h.first = cut + 1
	}
	h.held -= n
	return nil
}

// deleteMessage writes into b the delete of one stored message, given its
// key and value, and of its thread index entry.
func deleteMessage(b *pebble.Batch, uid string, key, value []byte) error {
	_, seq, err := parseMsgKey(key)
	if err != nil {
		return err
	}
	meta, err := decodeMeta(value)
	if err != nil {
		return fmt.Errorf("seq %d: %w", seq, err)
	}
	if err := b.Delete(key, nil); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	if th := meta.thread(); th != "" {
		if err := b.Delete(appendIndexKey(nil, uid, th, seq), nil); err != nil {
			return fmt.Errorf("batch: %w", err)
		}
	}
	return nil
}

// Read implements inbox.Store. A limit <= 0 reads nothing.
func (s *Store) Read(ctx context.Context, uid string, from uint64, limit int) ([]inbox.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pebblestore: read %s: %w", uid, err)
	}
	if err := checkUID(uid); err != nil {
		return nil, fmt.Errorf("pebblestore: read: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return nil, fmt.Errorf("pebblestore: read %s: %w", uid, err)
	}
	defer s.life.Exit()
	if limit <= 0 {
		return nil, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: appendMsgKey(nil, uid, max(from, 1)),
		UpperBound: appendMsgEnd(nil, uid),
	})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: read %s: %w", uid, err)
	}
	out := make([]inbox.Message, 0, min(limit, 64))
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		_, seq, err := parseMsgKey(it.Key())
		if err != nil {
			return nil, errors.Join(fmt.Errorf("pebblestore: read %s: %w", uid, err), it.Close())
		}
		m := inbox.Message{UID: uid, Seq: seq}
		if err := decodeMessage(it.Value(), &m); err != nil {
			return nil, errors.Join(fmt.Errorf("pebblestore: read %s seq %d: %w", uid, seq, err), it.Close())
		}
		out = append(out, m)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("pebblestore: read %s: %w", uid, err)
	}
	return out, nil
}

// Bounds implements inbox.Store. After the first call for a uid it is
// answered from memory.
func (s *Store) Bounds(ctx context.Context, uid string) (first, last uint64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, fmt.Errorf("pebblestore: bounds %s: %w", uid, err)
	}
	if err := checkUID(uid); err != nil {
		return 0, 0, fmt.Errorf("pebblestore: bounds: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return 0, 0, fmt.Errorf("pebblestore: bounds %s: %w", uid, err)
	}
	defer s.life.Exit()
	s.mu.Lock()
	h, err := s.headLocked(uid)
	s.mu.Unlock()
	if err != nil {
		return 0, 0, fmt.Errorf("pebblestore: bounds: %w", err)
	}
	if h.held == 0 {
		return 0, h.last, nil
	}
	return h.first, h.last, nil
}

// Cursor implements inbox.Store.
func (s *Store) Cursor(ctx context.Context, uid, device string) (seq uint64, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return 0, false, fmt.Errorf("pebblestore: cursor %s: %w", uid, err)
	}
	if err := checkUID(uid); err != nil {
		return 0, false, fmt.Errorf("pebblestore: cursor: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return 0, false, fmt.Errorf("pebblestore: cursor %s: %w", uid, err)
	}
	defer s.life.Exit()
	seq, ok, err = s.position("cursor", cursorKey(uid, device))
	if err != nil {
		return 0, false, fmt.Errorf("pebblestore: %s: %w", uid, err)
	}
	return seq, ok, nil
}

// SetCursor implements inbox.Store. The write is not synced.
func (s *Store) SetCursor(ctx context.Context, uid, device string, seq uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pebblestore: set cursor %s: %w", uid, err)
	}
	if err := checkUID(uid); err != nil {
		return fmt.Errorf("pebblestore: set cursor: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("pebblestore: set cursor %s: %w", uid, err)
	}
	defer s.life.Exit()
	if err := s.raise("cursor", cursorKey(uid, device), seq); err != nil {
		return fmt.Errorf("pebblestore: set cursor %s: %w", uid, err)
	}
	return nil
}

func (s *Store) reportDrops(drops []drop, reason string) {
	if s.opts.OnDrop == nil {
		return
	}
	for _, d := range drops {
		s.opts.OnDrop(d.uid, d.n, reason)
	}
}

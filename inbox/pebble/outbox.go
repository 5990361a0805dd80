package pebblestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/inboxmq/inboxmq/inbox"
)

// The event outbox lives under two prefixes, per sink:
//
//	"o" sink 0x00 due(8) id  -> entry (inbox.EncodeOutboxEntry)
//	"O" sink 0x00 id         -> due(8): finds an entry by id
//
// so ClaimDueEvents is one ordered scan from the start of the sink's range.
const (
	prefixOutbox   = 'o'
	prefixOutboxID = 'O'
)

var errBadSink = errors.New("sink name must be non-empty and must not contain a 0x00 byte")

func checkSink(sink string) error {
	if sink == "" || strings.IndexByte(sink, sep) >= 0 {
		return fmt.Errorf("sink %q: %w", sink, errBadSink)
	}
	return nil
}

func outboxStart(sink string) []byte {
	k := append([]byte{prefixOutbox}, sink...)
	return append(k, sep)
}

func outboxKey(sink string, due time.Time, id string) []byte {
	k := binary.BigEndian.AppendUint64(outboxStart(sink), uint64(due.UnixMilli()))
	return append(k, id...)
}

func outboxIDKey(sink, id string) []byte {
	k := append([]byte{prefixOutboxID}, sink...)
	k = append(k, sep)
	return append(k, id...)
}

// EnqueueEvents implements inbox.Outbox; the batch is synced.
func (s *Store) EnqueueEvents(ctx context.Context, entries []inbox.OutboxEntry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pebblestore: enqueue events: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("pebblestore: enqueue events: %w", err)
	}
	defer s.life.Exit()
	b := s.db.NewBatch()
	defer b.Close()
	if err := s.applyEnqueue(b, entries); err != nil {
		return fmt.Errorf("pebblestore: enqueue events: %w", err)
	}
	// Outside s.outMu, so that events emitted at once (one per stored
	// message, from every publishing connection) share an fsync.
	if err := b.SyncWait(); err != nil {
		return fmt.Errorf("pebblestore: enqueue events: sync: %w", err)
	}
	return nil
}

// applyEnqueue writes entries into b and applies it without waiting for
// the fsync, under s.outMu: putOutbox reads the id index it replaces.
func (s *Store) applyEnqueue(b *pebble.Batch, entries []inbox.OutboxEntry) error {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	for _, e := range entries {
		if err := s.putOutbox(b, e); err != nil {
			return err
		}
	}
	return s.db.ApplyNoSyncWait(b, pebble.Sync)
}

func (s *Store) putOutbox(b *pebble.Batch, e inbox.OutboxEntry) error {
	if err := checkSink(e.Sink); err != nil {
		return err
	}
	if e.ID == "" {
		return errors.New("outbox entry without id")
	}
	val, err := inbox.EncodeOutboxEntry(e)
	if err != nil {
		return err
	}
	// An entry waiting under the same id is replaced, not doubled.
	if old, ok, err := s.getUint("outbox index", outboxIDKey(e.Sink, e.ID)); err != nil {
		return err
	} else if ok {
		if err := b.Delete(outboxKey(e.Sink, time.UnixMilli(int64(old)), e.ID), nil); err != nil {
			return err
		}
	}
	if err := b.Set(outboxKey(e.Sink, e.Due, e.ID), val, nil); err != nil {
		return err
	}
	return b.Set(outboxIDKey(e.Sink, e.ID), encodeUint(uint64(e.Due.UnixMilli())), nil)
}

// ClaimDueEvents implements inbox.Outbox. The lease is not synced: after a
// crash a claimed entry is simply due at its old time.
func (s *Store) ClaimDueEvents(ctx context.Context, sink string, now time.Time, lease time.Duration, limit int) ([]inbox.OutboxEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pebblestore: claim events: %w", err)
	}
	if err := checkSink(sink); err != nil {
		return nil, fmt.Errorf("pebblestore: claim events: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	if err := s.life.Enter(); err != nil {
		return nil, fmt.Errorf("pebblestore: claim events: %w", err)
	}
	defer s.life.Exit()
	s.outMu.Lock()
	defer s.outMu.Unlock()
	start := outboxStart(sink)
	upper := binary.BigEndian.AppendUint64(bytes.Clone(start), uint64(now.UnixMilli())+1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: claim events: %w", err)
	}
	var out []inbox.OutboxEntry
	var old [][]byte
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		k := it.Key()
		if len(k) <= len(start)+8 {
			it.Close()
			return nil, fmt.Errorf("pebblestore: claim events: %w: outbox key %x", errCorrupt, k)
		}
		e := inbox.OutboxEntry{Sink: sink, ID: string(k[len(start)+8:])}
		if err := inbox.DecodeOutboxEntry(it.Value(), &e); err != nil {
			it.Close()
			return nil, fmt.Errorf("pebblestore: claim events: %w: %w", errCorrupt, err)
		}
		e.Body = bytes.Clone(e.Body)
		out = append(out, e)
		old = append(old, bytes.Clone(k))
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("pebblestore: claim events: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	leased := time.UnixMilli(now.Add(lease).UnixMilli())
	for i := range out {
		if err := b.Delete(old[i], nil); err != nil {
			return nil, fmt.Errorf("pebblestore: claim events: %w", err)
		}
		e := out[i]
		e.Due = leased
		if err := s.putOutbox(b, e); err != nil {
			return nil, fmt.Errorf("pebblestore: claim events: %w", err)
		}
		out[i].Due = time.UnixMilli(int64(binary.BigEndian.Uint64(old[i][len(start) : len(start)+8])))
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, fmt.Errorf("pebblestore: claim events: %w", err)
	}
	return out, nil
}

// outboxDueLocked returns the due time stored for id; ok is false when
// the entry is gone. s.outMu must be held.
func (s *Store) outboxDueLocked(sink, id string) (time.Time, bool, error) {
	v, ok, err := s.getUint("outbox index", outboxIDKey(sink, id))
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	return time.UnixMilli(int64(v)), true, nil
}

// RescheduleEvent implements inbox.Outbox. It is synced: a crash must not
// leave the entry due only when its lease ends.
func (s *Store) RescheduleEvent(ctx context.Context, e inbox.OutboxEntry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pebblestore: reschedule event: %w", err)
	}
	if err := checkSink(e.Sink); err != nil {
		return fmt.Errorf("pebblestore: reschedule event: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("pebblestore: reschedule event: %w", err)
	}
	defer s.life.Exit()
	s.outMu.Lock()
	defer s.outMu.Unlock()
	due, ok, err := s.outboxDueLocked(e.Sink, e.ID)
	if err != nil || !ok {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Delete(outboxKey(e.Sink, due, e.ID), nil); err != nil {
		return fmt.Errorf("pebblestore: reschedule event: %w", err)
	}
	if err := s.putOutbox(b, e); err != nil {
		return fmt.Errorf("pebblestore: reschedule event: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("pebblestore: reschedule event: %w", err)
	}
	return nil
}

// DeleteEvents implements inbox.Outbox (not synced: after a crash an
// entry may be delivered again, never lost).
func (s *Store) DeleteEvents(ctx context.Context, sink string, ids []string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pebblestore: delete events: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("pebblestore: delete events: %w", err)
	}
	defer s.life.Exit()
	s.outMu.Lock()
	defer s.outMu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	for _, id := range ids {
		due, ok, err := s.outboxDueLocked(sink, id)
		if err != nil {
			return fmt.Errorf("pebblestore: delete events: %w", err)
		}
		if !ok {
			continue
		}
		if err := b.Delete(outboxKey(sink, due, id), nil); err != nil {
			return fmt.Errorf("pebblestore: delete events: %w", err)
		}
		if err := b.Delete(outboxIDKey(sink, id), nil); err != nil {
			return fmt.Errorf("pebblestore: delete events: %w", err)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("pebblestore: delete events: %w", err)
	}
	return nil
}

// OutboxLen implements inbox.Outbox: a scan of the sink's index.
func (s *Store) OutboxLen(ctx context.Context, sink string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("pebblestore: outbox length: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return 0, fmt.Errorf("pebblestore: outbox length: %w", err)
	}
	defer s.life.Exit()
	start := outboxIDKey(sink, "")
	end := append(bytes.Clone(start[:len(start)-1]), sep+1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return 0, fmt.Errorf("pebblestore: outbox length: %w", err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("pebblestore: outbox length: %w", err)
	}
	return n, nil
}

package pebblestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/inboxmq/inboxmq/inbox"
)

// The push schedule lives under its own prefix, ordered by due time:
//
//	"p" due(8, Unix ms) uid 0x00 seq(8) -> empty
//
// so ClaimDuePushes is one ordered scan from the start of the prefix.
const prefixPush = 'p'

var pushSpaceStart = []byte{prefixPush}

func pushKey(e inbox.PushEntry) []byte {
	k := make([]byte, 0, 1+8+len(e.UID)+1+8)
	k = append(k, prefixPush)
	k = binary.BigEndian.AppendUint64(k, uint64(e.Due.UnixMilli()))
	k = append(k, e.UID...)
	k = append(k, sep)
	return binary.BigEndian.AppendUint64(k, e.Seq)
}

func parsePushKey(k []byte) (inbox.PushEntry, error) {
	if len(k) < 1+8+1+1+8 || k[0] != prefixPush || k[len(k)-9] != sep {
		return inbox.PushEntry{}, fmt.Errorf("%w: push key %x", errCorrupt, k)
	}
	return inbox.PushEntry{
		Due: time.UnixMilli(int64(binary.BigEndian.Uint64(k[1:9]))),
		UID: string(k[9 : len(k)-9]),
		Seq: binary.BigEndian.Uint64(k[len(k)-8:]),
	}, nil
}

// SchedulePush adds entries to the push schedule (not synced).
func (s *Store) SchedulePush(ctx context.Context, entries []inbox.PushEntry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pebblestore: schedule push: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("pebblestore: schedule push: %w", err)
	}
	defer s.life.Exit()
	b := s.db.NewBatch()
	defer b.Close()
	for _, e := range entries {
		if err := checkUID(e.UID); err != nil {
			return fmt.Errorf("pebblestore: schedule push: %w", err)
		}
		if err := b.Set(pushKey(e), nil, nil); err != nil {
			return fmt.Errorf("pebblestore: schedule push: %w", err)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("pebblestore: schedule push: %w", err)
	}
	return nil
}

// ClaimDuePushes implements inbox.Pushes: the claimed entries' keys move
// to their new due time, in one batch.
func (s *Store) ClaimDuePushes(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]inbox.PushEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pebblestore: claim pushes: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	if err := s.life.Enter(); err != nil {
		return nil, fmt.Errorf("pebblestore: claim pushes: %w", err)
	}
	defer s.life.Exit()
	// One claimer at a time: a data dir has one store, so this makes every
	// claim exclusive.
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	upper := binary.BigEndian.AppendUint64([]byte{prefixPush}, uint64(now.UnixMilli())+1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: pushSpaceStart, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: claim pushes: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	again := time.UnixMilli(now.Add(lease).UnixMilli())
	var out []inbox.PushEntry
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		e, err := parsePushKey(it.Key())
		if err == nil {
			err = b.Delete(it.Key(), nil)
		}
		if err == nil {
			e.Due = again
			err = b.Set(pushKey(e), nil, nil)
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("pebblestore: claim pushes: %w", err), it.Close())
		}
		out = append(out, e)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("pebblestore: claim pushes: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, fmt.Errorf("pebblestore: claim pushes: %w", err)
	}
	return out, nil
}

// DonePushes implements inbox.Pushes. An entry claimed again since has
// another key, which this leaves alone.
func (s *Store) DonePushes(ctx context.Context, entries []inbox.PushEntry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pebblestore: done pushes: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("pebblestore: done pushes: %w", err)
	}
	defer s.life.Exit()
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	for _, e := range entries {
		if err := b.Delete(pushKey(e), nil); err != nil {
			return fmt.Errorf("pebblestore: done pushes: %w", err)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("pebblestore: done pushes: %w", err)
	}
	return nil
}

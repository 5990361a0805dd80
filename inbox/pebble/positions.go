package pebblestore

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"

	"github.com/inboxmq/inboxmq/inbox"
)

// Positions: cursors and read marks, moved only forward and cached after
// first use (see Store.positions).

// raise moves the position stored under key forward to seq: it writes
// when the key is missing or holds less. The write is not synced.
func (s *Store) raise(what string, key []byte, seq uint64) error {
	s.markMu.Lock()
	defer s.markMu.Unlock()
	cur, ok, err := s.positionLocked(what, key)
	if err != nil {
		return err
	}
	if ok && seq <= cur {
		return nil
	}
	if err := s.db.Set(key, encodeUint(seq), pebble.NoSync); err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	s.remember(key, position{seq, true})
	return nil
}

// maxPositions bounds the positions cache (about 100 bytes an entry);
// past it the cache starts over, which costs one read per key again.
const maxPositions = 1 << 20

// position reads a cursor or read mark through the positions cache.
func (s *Store) position(what string, key []byte) (uint64, bool, error) {
	s.markMu.Lock()
	defer s.markMu.Unlock()
	return s.positionLocked(what, key)
}

// position is a cached cursor or read mark; ok is false for a key known
// to be absent (a device seen for the first time reads nothing stored).
type position struct {
	v  uint64
	ok bool
}

func (s *Store) positionLocked(what string, key []byte) (uint64, bool, error) {
	if p, ok := s.positions[string(key)]; ok {
		return p.v, p.ok, nil
	}
	v, ok, err := s.getUint(what, key)
	if err == nil {
		s.remember(key, position{v, ok})
	}
	return v, ok, err
}

func (s *Store) remember(key []byte, p position) {
	if len(s.positions) >= maxPositions {
		clear(s.positions)
	}
	s.positions[string(key)] = p
}

// getUint reads an 8-byte value; ok is false when key is absent.
func (s *Store) getUint(what string, key []byte) (v uint64, ok bool, err error) {
	val, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read %s: %w", what, err)
	}
	v, err = decodeUint(what, val)
	if cerr := closer.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("read %s: %w", what, cerr)
	}
	return v, err == nil, err
}

var _ inbox.AckWriter = (*Store)(nil)

// WriteAcks implements inbox.AckWriter: the cursors that move forward are
// written in one unsynced batch, one commit for every device the delivery
// side acknowledged since its last write, instead of a SetCursor (and a
// commit) each. The push entries of acked stay where they are: they are
// keyed by due time, so finding them would cost a scan, and the push check
// finds them acknowledged and sends nothing, as it does for a store
// without WriteAcks.
func (s *Store) WriteAcks(ctx context.Context, cursors []inbox.CursorPos, _ []inbox.PushRange) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pebblestore: write acks: %w", err)
	}
	for _, c := range cursors {
		if err := checkUID(c.UID); err != nil {
			return fmt.Errorf("pebblestore: write acks: %w", err)
		}
	}
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("pebblestore: write acks: %w", err)
	}
	defer s.life.Exit()
	s.markMu.Lock()
	defer s.markMu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	for _, c := range cursors {
		key := cursorKey(c.UID, c.Device)
		cur, ok, err := s.positionLocked("cursor", key)
		if err != nil {
			return fmt.Errorf("pebblestore: write acks: %w", err)
		}
		if ok && c.Seq <= cur {
			continue
		}
		if err := b.Set(key, encodeUint(c.Seq), nil); err != nil {
			return fmt.Errorf("pebblestore: write acks: batch: %w", err)
		}
		// Remembered now, so a later entry for the same device compares
		// with this one; forgotten below if the batch is not written.
		s.remember(key, position{c.Seq, true})
	}
	if b.Empty() {
		return nil
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		clear(s.positions) // read again on next use
		return fmt.Errorf("pebblestore: write acks: %w", err)
	}
	return nil
}

package pebblestore

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"
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

package pebblestore

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"

	"github.com/inboxmq/inboxmq/inbox"
)

// Block lists live under their own prefix, one key per listed uid:
//
//	"b" uid 0x00 blocked   -> empty
//
// so IsBlocked is one point read and BlockList one range scan.
const prefixBlock = 'b'

func appendBlockUID(dst []byte, uid string) []byte {
	dst = append(dst, prefixBlock)
	dst = append(dst, uid...)
	return append(dst, sep)
}

func blockKey(uid, blocked string) []byte {
	return append(appendBlockUID(nil, uid), blocked...)
}

// blockRange bounds the keys of uid's list: uids hold no 0x00, so no other
// uid's keys fall between.
func blockRange(uid string) (lower, upper []byte) {
	lower = appendBlockUID(nil, uid)
	upper = append(lower[:len(lower)-1:len(lower)-1], sep+1)
	return lower, upper
}

// enterBlocks checks what every Blocks method checks first and enters the
// store; on success the caller must call s.life.Exit.
func (s *Store) enterBlocks(ctx context.Context, uids ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, u := range uids {
		if err := checkUID(u); err != nil {
			return err
		}
	}
	return s.life.Enter()
}

// Block implements inbox.Blocks; the write is synced. s.blockMu makes the
// count-then-add atomic, so concurrent blocks cannot pass the cap.
func (s *Store) Block(ctx context.Context, uid, blocked string, max int) (bool, error) {
	if err := s.enterBlocks(ctx, uid, blocked); err != nil {
		return false, fmt.Errorf("pebblestore: block: %w", err)
	}
	defer s.life.Exit()
	s.blockMu.Lock()
	defer s.blockMu.Unlock()
	key := blockKey(uid, blocked)
	listed, err := s.has(key)
	if err != nil || listed {
		return false, wrapBlockErr("block", err)
	}
	if max > 0 {
		n, err := s.countBlocks(uid, max)
		if err != nil {
			return false, fmt.Errorf("pebblestore: block: %w", err)
		}
		if n >= max {
			return false, fmt.Errorf("pebblestore: block: %d uids listed: %w", n, inbox.ErrTooManyBlocks)
		}
	}
	if err := s.db.Set(key, nil, pebble.Sync); err != nil {
		return false, fmt.Errorf("pebblestore: block: %w", err)
	}
	return true, nil
}

// Unblock implements inbox.Blocks; the delete is synced.
func (s *Store) Unblock(ctx context.Context, uid, blocked string) (bool, error) {
	if err := s.enterBlocks(ctx, uid, blocked); err != nil {
		return false, fmt.Errorf("pebblestore: unblock: %w", err)
	}
	defer s.life.Exit()
	s.blockMu.Lock()
	defer s.blockMu.Unlock()
	key := blockKey(uid, blocked)
	listed, err := s.has(key)
	if err != nil || !listed {
		return false, wrapBlockErr("unblock", err)
	}
	if err := s.db.Delete(key, pebble.Sync); err != nil {
		return false, fmt.Errorf("pebblestore: unblock: %w", err)
	}
	return true, nil
}

// BlockList implements inbox.Blocks.
func (s *Store) BlockList(ctx context.Context, uid string) ([]string, error) {
	if err := s.enterBlocks(ctx, uid); err != nil {
		return nil, fmt.Errorf("pebblestore: block list: %w", err)
	}
	defer s.life.Exit()
	lower, upper := blockRange(uid)
	out := []string{}
	err := s.scanRange(lower, upper, func(k []byte) bool {
		out = append(out, string(k[len(lower):]))
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: block list: %w", err)
	}
	return out, nil
}

// IsBlocked implements inbox.Blocks.
func (s *Store) IsBlocked(ctx context.Context, uid, peer string) (bool, error) {
	if err := s.enterBlocks(ctx, uid, peer); err != nil {
		return false, fmt.Errorf("pebblestore: is blocked: %w", err)
	}
	defer s.life.Exit()
	listed, err := s.has(blockKey(uid, peer))
	return listed, wrapBlockErr("is blocked", err)
}

func wrapBlockErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("pebblestore: %s: %w", what, err)
}

// has reports whether key is present.
func (s *Store) has(key []byte) (bool, error) {
	_, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}

// countBlocks counts uid's listed uids, stopping at limit.
func (s *Store) countBlocks(uid string, limit int) (int, error) {
	lower, upper := blockRange(uid)
	n := 0
	err := s.scanRange(lower, upper, func([]byte) bool {
		n++
		return n < limit
	})
	return n, err
}

// scanRange calls fn with each key in [lower, upper) until it returns false.
func (s *Store) scanRange(lower, upper []byte, fn func(k []byte) bool) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for ok := it.First(); ok && fn(it.Key()); ok = it.Next() {
	}
	return it.Close()
}

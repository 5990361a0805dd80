package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble"

	"github.com/inboxmq/inboxmq/inbox"
)

// Block lists live under their own prefix, one key per listed uid:
//
//	"b" uid 0x00 blocked   -> empty
//
// so IsBlocked is one point read and BlockList one range scan.
//
// Most users block nobody, and IsBlocked runs for every direct message, so
// the store remembers how many uids each recently asked list holds
// (blockLists): a list known to be empty is answered without a read.
const prefixBlock = 'b'

// blockLists caches the length of block lists. A length is loaded and
// changed only under Store.blockMu (by the first IsBlocked of a uid, and
// by Block and Unblock after their write), so no load overwrites a newer
// change; IsBlocked reads it under mu alone, never waiting for a Block's
// fsync. Reading a length just before a concurrent Block updates it is
// IsBlocked answering before that Block: Block has not returned yet.
type blockLists struct {
	mu  sync.Mutex
	len map[string]int // uid -> listed uids; absent: not known
}

// maxBlockLists bounds the cache (about 60 bytes a uid); past it the
// cache starts over, which costs one scan per uid again.
const maxBlockLists = 1 << 20

func (c *blockLists) get(uid string) (n int, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, known = c.len[uid]
	return n, known
}

// set records the length of uid's list. Store.blockMu must be held.
func (c *blockLists) set(uid string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.len == nil || len(c.len) >= maxBlockLists {
		c.len = make(map[string]int)
	}
	c.len[uid] = n
}

// change adds d to the length of uid's list, if known. Store.blockMu must
// be held.
func (c *blockLists) change(uid string, d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.len[uid]; ok {
		c.len[uid] = n + d
	}
}

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
	s.blockLists.change(uid, 1)
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
	s.blockLists.change(uid, -1)
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

// IsBlocked implements inbox.Blocks. An empty list costs a range scan the
// first time and no read after (see blockLists).
func (s *Store) IsBlocked(ctx context.Context, uid, peer string) (bool, error) {
	if err := s.enterBlocks(ctx, uid, peer); err != nil {
		return false, fmt.Errorf("pebblestore: is blocked: %w", err)
	}
	defer s.life.Exit()
	n, known := s.blockLists.get(uid)
	if !known {
		var err error
		if n, err = s.loadBlockListLen(uid); err != nil {
			return false, wrapBlockErr("is blocked", err)
		}
	}
	if n == 0 {
		return false, nil
	}
	listed, err := s.has(blockKey(uid, peer))
	return listed, wrapBlockErr("is blocked", err)
}

// loadBlockListLen counts uid's list into s.blockLists, under s.blockMu so
// that no Block or Unblock changes it meanwhile.
func (s *Store) loadBlockListLen(uid string) (int, error) {
	s.blockMu.Lock()
	defer s.blockMu.Unlock()
	if n, known := s.blockLists.get(uid); known {
		return n, nil // loaded while this call waited
	}
	n, err := s.countBlocks(uid, 0)
	if err != nil {
		return 0, err
	}
	s.blockLists.set(uid, n)
	return n, nil
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

// countBlocks counts uid's listed uids, stopping at limit (0: none).
func (s *Store) countBlocks(uid string, limit int) (int, error) {
	lower, upper := blockRange(uid)
	n := 0
	err := s.scanRange(lower, upper, func([]byte) bool {
		n++
		return limit <= 0 || n < limit
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

package pebblestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble"
)

// An expiry batch covers at most expireGroup inboxes and expireChunk
// messages. Each batch is built under s.mu, reading the messages it drops
// (for their thread index entries), so the chunk bounds how long appends
// wait; the group amortises taking s.mu and committing.
const (
	expireGroup = 256
	expireChunk = 512
)

// expiry is the expired prefix of one inbox as the sweep saw it: every
// held Seq up to through.
type expiry struct {
	uid     string
	through uint64
}

// ExpireBefore implements inbox.Store. It walks each inbox from its oldest
// message, stops at the first with Time >= t.UnixMilli() and seeks to the
// next inbox. Message times follow the wall clock, so after the clock
// stepped back a few messages may be kept until a later sweep. The deletes
// are not synced. Read marks, like cursors, are left alone.
func (s *Store) ExpireBefore(ctx context.Context, t time.Time) (int, error) {
	if err := s.life.Enter(); err != nil {
		return 0, fmt.Errorf("pebblestore: expire: %w", err)
	}
	defer s.life.Exit()

	cut := t.UnixMilli()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: msgSpaceStart, UpperBound: msgSpaceEnd})
	if err != nil {
		return 0, fmt.Errorf("pebblestore: expire: %w", err)
	}
	total, pending := 0, 0
	var group []expiry
	flush := func() error {
		n, err := s.dropExpired(group)
		total += n
		group, pending = group[:0], 0
		return err
	}
	for ok := it.First(); ok; {
		if err := ctx.Err(); err != nil {
			return total, errors.Join(fmt.Errorf("pebblestore: expire: %w", err), flush(), it.Close())
		}
		uidb, _, err := parseMsgKey(it.Key())
		if err != nil {
			return total, errors.Join(fmt.Errorf("pebblestore: expire: %w", err), flush(), it.Close())
		}
		uid := string(uidb)
		prefix := appendMsgKey(nil, uid, 0)[:1+len(uid)+1]
		var through uint64
		for ; ok && bytes.HasPrefix(it.Key(), prefix); ok = it.Next() {
			_, seq, err := parseMsgKey(it.Key())
			if err == nil {
				var meta msgMeta
				meta, err = decodeMeta(it.Value())
				if err == nil && meta.time >= cut {
					break
				}
			}
			if err != nil {
				return total, errors.Join(fmt.Errorf("pebblestore: expire %s: %w", uid, err), flush(), it.Close())
			}
			through = seq
			if pending++; pending == expireChunk {
				// it is a snapshot, so the walk goes on past the flush.
				group = append(group, expiry{uid, through})
				through = 0
				if err := flush(); err != nil {
					return total, errors.Join(err, it.Close())
				}
			}
		}
		if through > 0 {
			group = append(group, expiry{uid, through})
			if len(group) == expireGroup {
				if err := flush(); err != nil {
					return total, errors.Join(err, it.Close())
				}
			}
		}
		if ok {
			ok = it.SeekGE(appendMsgEnd(nil, uid))
		}
	}
	if err := flush(); err != nil {
		return total, errors.Join(err, it.Close())
	}
	if err := it.Close(); err != nil {
		return total, fmt.Errorf("pebblestore: expire: %w", err)
	}
	// Request records of quiet inboxes leave with the sweep too (the
	// window is the store's, not t: they are not messages).
	if err := s.expireRequests(s.now()); err != nil {
		return total, fmt.Errorf("pebblestore: expire: %w", err)
	}
	return total, nil
}

// dropExpired deletes the expired prefixes in one unsynced batch and
// reports them.
func (s *Store) dropExpired(group []expiry) (int, error) {
	if len(group) == 0 {
		return 0, nil
	}
	drops, err := s.applyExpired(group)
	if err != nil {
		return 0, fmt.Errorf("pebblestore: expire: %w", err)
	}
	s.reportDrops(drops, "expired")
	n := 0
	for _, d := range drops {
		n += d.n
	}
	return n, nil
}

// applyExpired deletes, for each expiry, the messages uid still holds up to
// through, with their thread index entries, and commits the new heads in
// the same batch. The sweep's iterator may be behind concurrent writes, so
// the messages are read again here, under s.mu, where the database is
// current: what overflow or Delete removed meanwhile is neither deleted
// again nor counted.
func (s *Store) applyExpired(group []expiry) (drops []drop, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer func() { err = errors.Join(err, b.Close()) }()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: msgSpaceStart, UpperBound: msgSpaceEnd})
	if err != nil {
		return nil, fmt.Errorf("iterator: %w", err)
	}
	heads := make(map[string]head, len(group))
	for _, e := range group {
		h, ok := heads[e.uid]
		if !ok {
			if h, err = s.headLocked(e.uid); err != nil {
				return nil, errors.Join(err, it.Close())
			}
		}
		if h.held == 0 || e.through < h.first {
			continue
		}
		n, next, err := deleteThrough(b, it, e.uid, h.first, e.through)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("%s: %w", e.uid, err), it.Close())
		}
		if n == 0 {
			continue
		}
		if n > h.held || (next == 0) != (n == h.held) {
			return nil, errors.Join(fmt.Errorf("%s: %w: head says %d held from %d, expiry found %d then %d",
				e.uid, errCorrupt, h.held, h.first, n, next), it.Close())
		}
		h.first, h.held = next, h.held-n
		if h.held == 0 {
			h.first = h.last + 1
		}
		if err := b.Set(headKey(e.uid), encodeHead(h), nil); err != nil {
			return nil, errors.Join(fmt.Errorf("batch: %w", err), it.Close())
		}
		heads[e.uid] = h
		drops = append(drops, drop{e.uid, int(n)})
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("iterator: %w", err)
	}
	if len(drops) == 0 {
		return nil, nil
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	for uid, h := range heads {
		s.heads[uid] = h
	}
	return drops, nil
}

// deleteThrough writes into b the deletes of uid's messages from first
// through through, read with it, and of their index entries. It returns how
// many there were and the Seq of the next message held (0 when none is).
func deleteThrough(b *pebble.Batch, it *pebble.Iterator, uid string, first, through uint64) (n, next uint64, err error) {
	end := appendMsgEnd(nil, uid)
	var key []byte
	for ok := it.SeekGE(appendMsgKey(nil, uid, first)); ok && bytes.Compare(it.Key(), end) < 0; ok = it.Next() {
		_, seq, err := parseMsgKey(it.Key())
		if err != nil {
			return 0, 0, err
		}
		if seq > through {
			next = seq
			break
		}
		meta, err := decodeMeta(it.Value())
		if err != nil {
			return 0, 0, fmt.Errorf("seq %d: %w", seq, err)
		}
		if th := meta.thread(); th != "" {
			key = appendIndexKey(key[:0], uid, th, seq)
			if err := b.Delete(key, nil); err != nil {
				return 0, 0, fmt.Errorf("batch: %w", err)
			}
		}
		n++
	}
	if err := it.Error(); err != nil {
		return 0, 0, fmt.Errorf("iterator: %w", err)
	}
	if n > 0 {
		// One range tombstone for the messages, rather than n point ones.
		if err := b.DeleteRange(appendMsgKey(nil, uid, first), appendMsgKey(nil, uid, through+1), nil); err != nil {
			return 0, 0, fmt.Errorf("batch: %w", err)
		}
	}
	return n, next, nil
}

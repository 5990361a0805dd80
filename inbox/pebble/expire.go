package pebblestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble"
)

// expireGroup is how many inboxes one expiry batch covers: large enough to
// amortise taking s.mu and committing, small enough not to stall appends.
const expireGroup = 256

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
// are not synced.
func (s *Store) ExpireBefore(ctx context.Context, t time.Time) (int, error) {
	if err := s.enter(); err != nil {
		return 0, fmt.Errorf("pebblestore: expire: %w", err)
	}
	defer s.life.RUnlock()

	cut := t.UnixMilli()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: msgSpaceStart, UpperBound: msgSpaceEnd})
	if err != nil {
		return 0, fmt.Errorf("pebblestore: expire: %w", err)
	}
	total := 0
	var group []expiry
	flush := func() error {
		n, err := s.dropExpired(group)
		total += n
		group = group[:0]
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
				var tm int64
				tm, err = decodeTime(it.Value())
				if err == nil && tm >= cut {
					break
				}
			}
			if err != nil {
				return total, errors.Join(fmt.Errorf("pebblestore: expire %s: %w", uid, err), flush(), it.Close())
			}
			through = seq
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
	return total, nil
}

// dropExpired deletes the expired prefixes in one unsynced batch and
// reports them. The sweep's iterator may be behind concurrent appends, so
// each prefix is cut against the cached head: messages that overflow
// dropped meanwhile are neither deleted again nor counted.
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

func (s *Store) applyExpired(group []expiry) ([]drop, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	var drops []drop
	heads := make([]head, len(group))
	for i, e := range group {
		h, err := s.headLocked(e.uid)
		if err != nil {
			return nil, errors.Join(err, b.Close())
		}
		if e.through >= h.first {
			if err := b.DeleteRange(appendMsgKey(nil, e.uid, h.first), appendMsgKey(nil, e.uid, e.through+1), nil); err != nil {
				return nil, errors.Join(fmt.Errorf("batch: %w", err), b.Close())
			}
			drops = append(drops, drop{e.uid, int(e.through + 1 - h.first)})
			h.first = e.through + 1
		}
		heads[i] = h
	}
	if len(drops) == 0 {
		return nil, b.Close()
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, errors.Join(fmt.Errorf("commit: %w", err), b.Close())
	}
	for i, e := range group {
		s.heads[e.uid] = heads[i]
	}
	return drops, b.Close()
}

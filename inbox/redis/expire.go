package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// sweepGroup is how many inboxes one round of the sweep covers: one
	// pipeline of that many script calls.
	sweepGroup = 256
	// expireLimit is the most messages one script call drops, so that a
	// huge backlog does not block Redis for long; the sweep comes back for
	// the rest.
	expireLimit = 1000
)

// ExpireBefore implements inbox.Store. It walks the sweep index, the one
// key "<prefix>{$global}:oldest", from its lowest score: every inbox whose
// oldest message may be older than t. Each round reads up to sweepGroup
// uids from it, drops their expired messages with one script call per
// inbox (pipelined), and rescores or removes their entries, so a round is
// two round trips, four when inboxes emptied. Several nodes may sweep at
// once; each message is dropped and counted once.
func (s *Store) ExpireBefore(ctx context.Context, t time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("redisstore: expire: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return 0, fmt.Errorf("redisstore: expire: %w", err)
	}
	defer s.life.Exit()

	cut := t.UnixMilli()
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("redisstore: expire: %w", err)
		}
		due, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
			Key:     s.k.oldest(),
			Start:   "-inf",
			Stop:    "(" + strconv.FormatInt(cut, 10),
			ByScore: true,
			Count:   sweepGroup,
		}).Result()
		if err != nil {
			return total, fmt.Errorf("redisstore: expire: %w", err)
		}
		if len(due) == 0 {
			return total, nil
		}
		n, err := s.expireGroup(ctx, due, cut)
		total += n
		if err != nil {
			return total, fmt.Errorf("redisstore: expire: %w", err)
		}
	}
}

// expireGroup drops the expired messages of the inboxes in uids and
// updates their sweep index entries. Every entry it leaves below cut has
// more to drop, so the sweep ends: the others get a score >= cut or go.
//
// An entry is removed only when its inbox is empty and not locked for an
// append, and the inbox is probed again afterwards: an Append takes its
// lock before it writes its index entry, so an append that raced the
// removal either shows in the probe or writes its entry after the removal.
func (s *Store) expireGroup(ctx context.Context, uids []string, cut int64) (int, error) {
	args := []any{strconv.FormatInt(cut, 10), expireLimit}
	calls := make([]*call, len(uids))
	for i, uid := range uids {
		b := s.k.base(uid)
		calls[i] = &call{
			script: scriptExpire,
			keys:   []string{b + sufMeta, b + sufLog, b + sufTimes, b + sufThreads, b + sufLock},
			args:   args,
		}
	}
	s.evalAll(ctx, calls, nil)

	var errs []error
	var drops []drop
	var rescore []redis.Z
	var empty []string
	total := 0
	for i, uid := range uids {
		res, err := calls[i].cmd.Slice()
		var n, more, locked int64
		var oldest string
		if err == nil {
			n, more, oldest, locked, err = parseExpire(res)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("inbox %s: %w", uid, err))
			continue
		}
		if n > 0 {
			drops = append(drops, drop{uid, int(n)})
			total += int(n)
		}
		switch {
		case more == 1:
			// Left below cut: the next round comes back to it.
		case oldest != "":
			ms, err := strconv.ParseFloat(oldest, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("inbox %s: oldest time: %w", uid, err))
				continue
			}
			// At least cut: messages appended during the sweep with an
			// older time (a future cut, a node's clock behind) wait for the
			// next sweep rather than keep this one going.
			rescore = append(rescore, redis.Z{Score: max(ms, float64(cut)), Member: uid})
		case locked == 1:
			// An append is under way: keep the entry for it.
			rescore = append(rescore, redis.Z{Score: float64(cut), Member: uid})
		default:
			empty = append(empty, uid)
		}
	}
	s.reportDrops(drops, "expired")
	if len(errs) > 0 {
		return total, errors.Join(errs...)
	}
	if err := s.updateIndex(ctx, rescore, empty); err != nil {
		return total, err
	}
	if len(empty) > 0 {
		if err := s.probe(ctx, empty, cut); err != nil {
			return total, err
		}
	}
	return total, nil
}

// parseExpire reads the reply of scriptExpire.
func parseExpire(res []any) (n, more int64, oldest string, locked int64, err error) {
	if len(res) != 4 {
		return 0, 0, "", 0, fmt.Errorf("expire script returned %d values", len(res))
	}
	var ok [4]bool
	n, ok[0] = res[0].(int64)
	more, ok[1] = res[1].(int64)
	oldest, ok[2] = res[2].(string)
	locked, ok[3] = res[3].(int64)
	if ok != [4]bool{true, true, true, true} {
		return 0, 0, "", 0, fmt.Errorf("expire script returned %v", res)
	}
	return n, more, oldest, locked, nil
}

// updateIndex rescores and removes sweep index entries in one round trip.
func (s *Store) updateIndex(ctx context.Context, rescore []redis.Z, remove []string) error {
	if len(rescore) == 0 && len(remove) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if len(rescore) > 0 {
			p.ZAdd(ctx, s.k.oldest(), rescore...)
		}
		if len(remove) > 0 {
			members := make([]any, len(remove))
			for i, uid := range remove {
				members[i] = uid
			}
			p.ZRem(ctx, s.k.oldest(), members...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sweep index: %w", err)
	}
	return nil
}

// probe looks again at inboxes whose index entry was just removed and
// puts back the entries of those that an append reached meanwhile.
func (s *Store) probe(ctx context.Context, uids []string, cut int64) error {
	calls := make([]*call, len(uids))
	for i, uid := range uids {
		b := s.k.base(uid)
		calls[i] = &call{script: scriptProbe, keys: []string{b + sufMeta, b + sufLog, b + sufLock}}
	}
	s.evalAll(ctx, calls, nil)
	var errs []error
	var back []redis.Z
	for i, uid := range uids {
		res, err := calls[i].cmd.Slice()
		if err == nil && len(res) != 2 {
			err = fmt.Errorf("probe script returned %d values", len(res))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("probe %s: %w", uid, err))
			continue
		}
		oldest, _ := res[0].(string)
		locked, _ := res[1].(int64)
		switch {
		case oldest != "":
			ms, err := strconv.ParseFloat(oldest, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("probe %s: oldest time: %w", uid, err))
				continue
			}
			back = append(back, redis.Z{Score: max(ms, float64(cut)), Member: uid})
		case locked == 1:
			back = append(back, redis.Z{Score: float64(cut), Member: uid})
		}
	}
	if len(back) > 0 {
		// LT: an append may have written a lower score meanwhile.
		if err := s.rdb.ZAddArgs(ctx, s.k.oldest(), redis.ZAddArgs{LT: true, Members: back}).Err(); err != nil {
			errs = append(errs, fmt.Errorf("sweep index: %w", err))
		}
	}
	return errors.Join(errs...)
}

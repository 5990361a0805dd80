package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/inbox"
)

// The push schedule is one ZSET in its own slot, P {$global}:push: member
// "seq:uid", score the due time in Unix ms. SchedulePush is one ZADD (and
// Submit writes its entries in its own script); ClaimDuePushes one script
// that takes due members and moves their score to the end of the lease in
// a single step, so an entry goes to one claimer at a time on any node;
// DonePushes removes them, if still leased at the score it was given.

func (k keys) pushes() string { return k.prefix + globalTag + ":push" }

var scriptClaimPushes = redis.NewScript(`-- inboxmq claim pushes
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], m) end
return due
`)

// scriptDonePushes removes members still at the score they were claimed
// with. ARGV: pairs of member and score.
var scriptDonePushes = redis.NewScript(`-- inboxmq done pushes
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    n = n + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return n
`)

// SchedulePush adds entries to the push schedule: one round trip.
func (s *Store) SchedulePush(ctx context.Context, entries []inbox.PushEntry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: schedule push: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("redisstore: schedule push: %w", err)
	}
	defer s.life.Exit()
	zs := make([]redis.Z, 0, len(entries))
	for _, e := range entries {
		if err := checkUID(e.UID); err != nil {
			return fmt.Errorf("redisstore: schedule push: %w", err)
		}
		zs = append(zs, redis.Z{Score: float64(e.Due.UnixMilli()), Member: strconv.FormatUint(e.Seq, 10) + ":" + e.UID})
	}
	if err := s.rdb.ZAdd(ctx, s.k.pushes(), zs...).Err(); err != nil {
		return fmt.Errorf("redisstore: schedule push: %w", err)
	}
	return nil
}

// ClaimDuePushes implements inbox.Pushes: one round trip.
func (s *Store) ClaimDuePushes(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]inbox.PushEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisstore: claim pushes: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	if err := s.life.Enter(); err != nil {
		return nil, fmt.Errorf("redisstore: claim pushes: %w", err)
	}
	defer s.life.Exit()
	again := now.Add(lease).UnixMilli()
	res, err := scriptClaimPushes.Run(ctx, s.rdb, []string{s.k.pushes()}, now.UnixMilli(), limit, again).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: claim pushes: %w", err)
	}
	out := make([]inbox.PushEntry, 0, len(res))
	for _, m := range res {
		seqStr, uid, ok := strings.Cut(m, ":")
		seq, err := strconv.ParseUint(seqStr, 10, 64)
		if !ok || err != nil {
			return out, fmt.Errorf("redisstore: claim pushes: bad schedule member %q", m)
		}
		out = append(out, inbox.PushEntry{UID: uid, Seq: seq, Due: time.UnixMilli(again)})
	}
	return out, nil
}

// DonePushes implements inbox.Pushes: one round trip.
func (s *Store) DonePushes(ctx context.Context, entries []inbox.PushEntry) error {
	if len(entries) == 0 {
		return nil
	}
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("redisstore: done pushes: %w", err)
	}
	defer s.life.Exit()
	args := make([]any, 0, 2*len(entries))
	for _, e := range entries {
		args = append(args, strconv.FormatUint(e.Seq, 10)+":"+e.UID, strconv.FormatInt(e.Due.UnixMilli(), 10))
	}
	if err := scriptDonePushes.Run(ctx, s.rdb, []string{s.k.pushes()}, args...).Err(); err != nil {
		return fmt.Errorf("redisstore: done pushes: %w", err)
	}
	return nil
}

// maxCancelRange bounds one range of WriteAcks: a member per Seq.
const maxCancelRange = 1 << 16

// pushMembers are the push schedule members of every Seq in the ranges:
// WriteAcks removes them (ZREM), and those without an entry cost a lookup.
func pushMembers(acked []inbox.PushRange) ([]any, error) {
	var members []any
	for _, r := range acked {
		if err := checkUID(r.UID); err != nil {
			return nil, err
		}
		if r.To >= r.From && r.To-r.From >= maxCancelRange {
			return nil, fmt.Errorf("%s: %d Seqs in one range, at most %d", r.UID, r.To-r.From+1, maxCancelRange)
		}
		for seq := max(r.From, 1); seq <= r.To; seq++ {
			members = append(members, strconv.FormatUint(seq, 10)+":"+r.UID)
		}
	}
	return members, nil
}

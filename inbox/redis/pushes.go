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
// "seq:uid", score the due time in Unix ms. SchedulePush is one ZADD;
// ClaimDuePushes one script that takes due members and removes them in a
// single step, so every entry goes to exactly one claimer on any node.

func (k keys) pushes() string { return k.prefix + globalTag + ":push" }

var scriptClaimPushes = redis.NewScript(`-- inboxmq claim pushes
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local members = {}
for i = 1, #due, 2 do members[#members + 1] = due[i] end
if #members > 0 then redis.call('ZREM', KEYS[1], unpack(members)) end
return due
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

// ClaimDuePushes removes and returns up to limit due entries: one round trip.
func (s *Store) ClaimDuePushes(ctx context.Context, now time.Time, limit int) ([]inbox.PushEntry, error) {
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
	res, err := scriptClaimPushes.Run(ctx, s.rdb, []string{s.k.pushes()}, now.UnixMilli(), limit).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: claim pushes: %w", err)
	}
	out := make([]inbox.PushEntry, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		seqStr, uid, ok := strings.Cut(res[i], ":")
		seq, err1 := strconv.ParseUint(seqStr, 10, 64)
		due, err2 := strconv.ParseFloat(res[i+1], 64)
		if !ok || err1 != nil || err2 != nil {
			return out, fmt.Errorf("redisstore: claim pushes: bad schedule member %q", res[i])
		}
		out = append(out, inbox.PushEntry{UID: uid, Seq: seq, Due: time.UnixMilli(int64(due))})
	}
	return out, nil
}

package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/inbox"
)

// The event outbox, per sink, in the global slot:
//
//	P {$global}:ev:<sink>   ZSET  entry id scored by its due time (Unix ms)
//	P {$global}:evd:<sink>  HASH  entry id -> entry (inbox.EncodeOutboxEntry)
//
// Claiming is one script that takes the due ids and moves them to the end
// of their lease in one step, so an entry goes to one claimer at a time on
// any node.

func (k keys) outbox(sink string) []string {
	return []string{k.prefix + globalTag + ":ev:" + sink, k.prefix + globalTag + ":evd:" + sink}
}

var scriptClaimEvents = redis.NewScript(`-- inboxmq claim events
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], ARGV[2], due[i])
  out[#out + 1] = due[i]
  out[#out + 1] = due[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], due[i]) or ''
end
return out
`)

var scriptRescheduleEvent = redis.NewScript(`-- inboxmq reschedule event
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
`)

var errNoSink = errors.New("sink name must not be empty")

// EnqueueEvents implements inbox.Outbox: one round trip (a transaction).
func (s *Store) EnqueueEvents(ctx context.Context, entries []inbox.OutboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("redisstore: enqueue events: %w", err)
	}
	defer s.life.Exit()
	pipe := s.rdb.TxPipeline()
	for _, e := range entries {
		if e.Sink == "" || e.ID == "" {
			return fmt.Errorf("redisstore: enqueue events: %w (or empty id)", errNoSink)
		}
		val, err := inbox.EncodeOutboxEntry(e)
		if err != nil {
			return fmt.Errorf("redisstore: enqueue events: %w", err)
		}
		k := s.k.outbox(e.Sink)
		pipe.HSet(ctx, k[1], e.ID, val)
		pipe.ZAdd(ctx, k[0], redis.Z{Score: float64(e.Due.UnixMilli()), Member: e.ID})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redisstore: enqueue events: %w", err)
	}
	return nil
}

// ClaimDueEvents implements inbox.Outbox: one round trip.
func (s *Store) ClaimDueEvents(ctx context.Context, sink string, now time.Time, lease time.Duration, limit int) ([]inbox.OutboxEntry, error) {
	if sink == "" {
		return nil, fmt.Errorf("redisstore: claim events: %w", errNoSink)
	}
	if limit <= 0 {
		return nil, nil
	}
	if err := s.life.Enter(); err != nil {
		return nil, fmt.Errorf("redisstore: claim events: %w", err)
	}
	defer s.life.Exit()
	res, err := scriptClaimEvents.Run(ctx, s.rdb, s.k.outbox(sink), now.UnixMilli(), now.Add(lease).UnixMilli(), limit).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: claim events: %w", err)
	}
	out := make([]inbox.OutboxEntry, 0, len(res)/3)
	for i := 0; i+2 < len(res); i += 3 {
		due, err := strconv.ParseFloat(res[i+1], 64)
		if err != nil || res[i+2] == "" {
			continue // an id without its entry: a half-deleted one
		}
		e := inbox.OutboxEntry{Sink: sink, ID: res[i], Due: time.UnixMilli(int64(due))}
		if err := inbox.DecodeOutboxEntry([]byte(res[i+2]), &e); err != nil {
			return out, fmt.Errorf("redisstore: claim events: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

// RescheduleEvent implements inbox.Outbox: one round trip.
func (s *Store) RescheduleEvent(ctx context.Context, e inbox.OutboxEntry) error {
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("redisstore: reschedule event: %w", err)
	}
	defer s.life.Exit()
	val, err := inbox.EncodeOutboxEntry(e)
	if err != nil {
		return fmt.Errorf("redisstore: reschedule event: %w", err)
	}
	if err := scriptRescheduleEvent.Run(ctx, s.rdb, s.k.outbox(e.Sink), e.ID, e.Due.UnixMilli(), val).Err(); err != nil {
		return fmt.Errorf("redisstore: reschedule event: %w", err)
	}
	return nil
}

// DeleteEvents implements inbox.Outbox: one round trip.
func (s *Store) DeleteEvents(ctx context.Context, sink string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("redisstore: delete events: %w", err)
	}
	defer s.life.Exit()
	k := s.k.outbox(sink)
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	pipe := s.rdb.TxPipeline()
	pipe.ZRem(ctx, k[0], members...)
	pipe.HDel(ctx, k[1], ids...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redisstore: delete events: %w", err)
	}
	return nil
}

// OutboxLen implements inbox.Outbox: one ZCARD.
func (s *Store) OutboxLen(ctx context.Context, sink string) (int, error) {
	if err := s.life.Enter(); err != nil {
		return 0, fmt.Errorf("redisstore: outbox length: %w", err)
	}
	defer s.life.Exit()
	n, err := s.rdb.ZCard(ctx, s.k.outbox(sink)[0]).Result()
	if err != nil {
		return 0, fmt.Errorf("redisstore: outbox length: %w", err)
	}
	return int(n), nil
}

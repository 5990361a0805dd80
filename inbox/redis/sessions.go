package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/inbox"
)

// Persistent sessions and retained messages share the global hash tag, so
// on a Cluster each script below touches one slot:
//
//	P {$global}:sess   HASH  session id -> session (inbox.EncodeSession, JSON)
//	P {$global}:sessx  ZSET  expiry index: member session id, score Expires (Unix ms),
//	                         only for sessions no connection holds
//	P {$global}:ret    HASH  topic -> retained message (opaque)
//
// The owner check of UpdateSession and DeleteSession reads the stored
// record's "o" field inside the script, so the check and the write are one
// step on any node.

func (k keys) sessions() string      { return k.prefix + globalTag + ":sess" }
func (k keys) sessionExpiry() string { return k.prefix + globalTag + ":sessx" }
func (k keys) retained() string      { return k.prefix + globalTag + ":ret" }

// scriptWriteSession stores ARGV[2] under ARGV[1]; with ARGV[3] = "1" only
// while the stored record's owner is ARGV[4]. ARGV[5] is Expires (0: held).
var scriptWriteSession = redis.NewScript(`-- inboxmq write session
if ARGV[3] == '1' then
  local cur = redis.call('HGET', KEYS[1], ARGV[1])
  if not cur or cjson.decode(cur)['o'] ~= ARGV[4] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[5] == '0' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
end
return 1
`)

// scriptDeleteSession removes ARGV[1] if its owner is ARGV[2] (or ARGV[2] is "").
var scriptDeleteSession = redis.NewScript(`-- inboxmq delete session
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
if ARGV[2] ~= '' and cjson.decode(cur)['o'] ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`)

// scriptExpireSessions removes up to ARGV[2] sessions with Expires <= ARGV[1].
var scriptExpireSessions = redis.NewScript(`-- inboxmq expire sessions
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then
  redis.call('HDEL', KEYS[1], unpack(ids))
  redis.call('ZREM', KEYS[2], unpack(ids))
end
return ids
`)

// expireBatch bounds the sessions one expiry script removes, so a sweep
// after a long outage never blocks Redis for long.
const expireBatch = 1000

// PutSession implements inbox.Sessions: one round trip.
func (s *Store) PutSession(ctx context.Context, sess inbox.Session) error {
	_, err := s.writeSession(ctx, "put session", sess, false)
	return err
}

// UpdateSession implements inbox.Sessions: one round trip.
func (s *Store) UpdateSession(ctx context.Context, sess inbox.Session) (bool, error) {
	return s.writeSession(ctx, "update session", sess, true)
}

func (s *Store) writeSession(ctx context.Context, what string, sess inbox.Session, onlyOwner bool) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("redisstore: %s: %w", what, err)
	}
	if sess.ID == "" {
		return false, fmt.Errorf("redisstore: %s: empty session id", what)
	}
	val, err := inbox.EncodeSession(sess)
	if err != nil {
		return false, fmt.Errorf("redisstore: %s: %w", what, err)
	}
	if err := s.life.Enter(); err != nil {
		return false, fmt.Errorf("redisstore: %s: %w", what, err)
	}
	defer s.life.Exit()
	only := "0"
	if onlyOwner {
		only = "1"
	}
	n, err := scriptWriteSession.Run(ctx, s.rdb, []string{s.k.sessions(), s.k.sessionExpiry()},
		sess.ID, val, only, sess.Owner, sess.Expires).Int()
	if err != nil {
		return false, fmt.Errorf("redisstore: %s: %w", what, err)
	}
	return n == 1, nil
}

// Session implements inbox.Sessions: one round trip.
func (s *Store) Session(ctx context.Context, id string) (inbox.Session, bool, error) {
	if err := s.life.Enter(); err != nil {
		return inbox.Session{}, false, fmt.Errorf("redisstore: session: %w", err)
	}
	defer s.life.Exit()
	val, err := s.rdb.HGet(ctx, s.k.sessions(), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return inbox.Session{}, false, nil
	}
	if err != nil {
		return inbox.Session{}, false, fmt.Errorf("redisstore: session: %w", err)
	}
	sess, err := inbox.DecodeSession(val)
	if err != nil {
		return inbox.Session{}, false, fmt.Errorf("redisstore: session %q: %w", id, err)
	}
	return sess, true, nil
}

// Sessions implements inbox.Sessions. It reads the hash in pages (HSCAN),
// so a large one does not block Redis.
func (s *Store) Sessions(ctx context.Context) ([]inbox.Session, error) {
	if err := s.life.Enter(); err != nil {
		return nil, fmt.Errorf("redisstore: sessions: %w", err)
	}
	defer s.life.Exit()
	var out []inbox.Session
	err := s.scanHash(ctx, s.k.sessions(), func(_, v string) error {
		sess, err := inbox.DecodeSession([]byte(v))
		if err != nil {
			return err
		}
		out = append(out, sess)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisstore: sessions: %w", err)
	}
	return out, nil
}

// scanHash calls fn with every field and value of a hash. A field may be
// seen twice (HSCAN's guarantee), so fn must be idempotent.
func (s *Store) scanHash(ctx context.Context, key string, fn func(field, value string) error) error {
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, key, cursor, "", 1000).Result()
		if err != nil {
			return err
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if err := fn(kv[i], kv[i+1]); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// DeleteSession implements inbox.Sessions: one round trip.
func (s *Store) DeleteSession(ctx context.Context, id, owner string) (bool, error) {
	if err := s.life.Enter(); err != nil {
		return false, fmt.Errorf("redisstore: delete session: %w", err)
	}
	defer s.life.Exit()
	n, err := scriptDeleteSession.Run(ctx, s.rdb, []string{s.k.sessions(), s.k.sessionExpiry()}, id, owner).Int()
	if err != nil {
		return false, fmt.Errorf("redisstore: delete session: %w", err)
	}
	return n == 1, nil
}

// ExpireSessions implements inbox.Sessions: one round trip per thousand.
func (s *Store) ExpireSessions(ctx context.Context, now time.Time) ([]string, error) {
	if err := s.life.Enter(); err != nil {
		return nil, fmt.Errorf("redisstore: expire sessions: %w", err)
	}
	defer s.life.Exit()
	var gone []string
	for {
		ids, err := scriptExpireSessions.Run(ctx, s.rdb, []string{s.k.sessions(), s.k.sessionExpiry()},
			now.UnixMilli(), expireBatch).StringSlice()
		if err != nil {
			return gone, fmt.Errorf("redisstore: expire sessions: %w", err)
		}
		gone = append(gone, ids...)
		if len(ids) < expireBatch {
			return gone, nil
		}
	}
}

// PutRetained implements inbox.Retained: one round trip.
func (s *Store) PutRetained(ctx context.Context, topic string, msg []byte) error {
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("redisstore: retained %q: %w", topic, err)
	}
	defer s.life.Exit()
	if err := s.rdb.HSet(ctx, s.k.retained(), topic, msg).Err(); err != nil {
		return fmt.Errorf("redisstore: retained %q: %w", topic, err)
	}
	return nil
}

// DeleteRetained implements inbox.Retained: one round trip.
func (s *Store) DeleteRetained(ctx context.Context, topic string) error {
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("redisstore: retained %q: %w", topic, err)
	}
	defer s.life.Exit()
	if err := s.rdb.HDel(ctx, s.k.retained(), topic).Err(); err != nil {
		return fmt.Errorf("redisstore: retained %q: %w", topic, err)
	}
	return nil
}

// RetainedMessages implements inbox.Retained.
func (s *Store) RetainedMessages(ctx context.Context) (map[string][]byte, error) {
	if err := s.life.Enter(); err != nil {
		return nil, fmt.Errorf("redisstore: retained messages: %w", err)
	}
	defer s.life.Exit()
	out := make(map[string][]byte)
	err := s.scanHash(ctx, s.k.retained(), func(k, v string) error {
		out[k] = []byte(v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisstore: retained messages: %w", err)
	}
	return out, nil
}

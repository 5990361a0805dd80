package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/inbox"
)

// editScript swaps one message's encoding for another if it is still the
// one the caller read. KEYS: h, m. ARGV: seq, the member read, the new
// member. Returns 1 when swapped, 0 when the message is gone, -1 when it
// changed since it was read (another edit won: read again).
const editScript = `
local m = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], ARGV[1])[1]
if not m then return 0 end
if m ~= ARGV[2] then return -1 end
redis.call('ZREM', KEYS[2], m)
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
return 1
`

var scriptEdit = build("edit", editScript)

// editAttempts bounds the read-and-swap rounds of one Edit: a round is
// lost only to another edit of the same message in between.
const editAttempts = 100

var errEditContended = errors.New("message changed on every attempt")

// Edit implements inbox.Editor. The message is decoded and encoded again
// in Go (the scripts never decode past the thread) and swapped in by a
// script that checks nothing changed since the read, so the indexes,
// which name the message by Seq, stay as they are.
func (s *Store) Edit(ctx context.Context, uid string, seq uint64, content string, at int64) (ok bool, err error) {
	if err := s.begin(ctx, uid); err != nil {
		return false, fmt.Errorf("redisstore: edit %s seq %d: %w", uid, seq, err)
	}
	defer s.life.Exit()
	if seq == 0 {
		return false, nil
	}
	b := s.k.base(uid)
	score := strconv.FormatUint(seq, 10)
	for range editAttempts {
		members, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: b + sufLog, Start: score, Stop: score, ByScore: true}).Result()
		if err != nil {
			return false, fmt.Errorf("redisstore: edit %s seq %d: %w", uid, seq, err)
		}
		if len(members) == 0 {
			return false, nil
		}
		var m inbox.Message
		if err := decodeMember(members[0], &m); err != nil {
			return false, fmt.Errorf("redisstore: edit %s seq %d: %w", uid, seq, err)
		}
		id, err := strconv.ParseUint(m.ID, 10, 64)
		if err != nil {
			return false, fmt.Errorf("redisstore: edit %s seq %d: id %q: %w", uid, seq, m.ID, err)
		}
		m.Content, m.Edited = content, at
		next := appendMember(nil, seq, id, &m)
		n, err := scriptEdit.Run(ctx, s.rdb, []string{b + sufMeta, b + sufLog}, score, members[0], next).Int64()
		if err != nil {
			return false, fmt.Errorf("redisstore: edit %s seq %d: %w", uid, seq, err)
		}
		if n >= 0 {
			return n == 1, nil
		}
	}
	return false, fmt.Errorf("redisstore: edit %s seq %d: %w", uid, seq, errEditContended)
}

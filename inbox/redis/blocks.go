package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/inbox"
)

// A block list is one SET per user, under the user's hash tag, so a node
// that checks a message reads one key of the recipient's slot. The inbox's
// h says whether the list has members (b: "1" or "0"; absent for lists
// written before b existed, which counts as "may have"), so that the
// submit script reads the list only for users who block someone.

// scriptBlock adds ARGV[1] to the list KEYS[1] unless it holds ARGV[2] (> 0)
// uids already: the count and the add are one atomic step, so concurrent
// blocks on several nodes cannot pass the cap. It marks the inbox's h
// (KEYS[2]) as having a block list. It returns 1 when added, 0 when
// listed already, -1 when the list is full.
var scriptBlock = redis.NewScript(`-- inboxmq block
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], 'b', '1')
  return 0
end
local max = tonumber(ARGV[2])
if max > 0 and redis.call('SCARD', KEYS[1]) >= max then return -1 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'b', '1')
return 1`)

// scriptUnblock removes ARGV[1] from the list KEYS[1] and, when the list
// is then empty, marks h (KEYS[2]) as having none. It returns 1 when
// removed, 0 when not listed.
var scriptUnblock = redis.NewScript(`-- inboxmq unblock
local n = redis.call('SREM', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[1]) == 0 then redis.call('HSET', KEYS[2], 'b', '0') end
return n`)

// Block implements inbox.Blocks with one script call.
func (s *Store) Block(ctx context.Context, uid, blocked string, max int) (bool, error) {
	if err := s.beginBlocks(ctx, uid, blocked); err != nil {
		return false, fmt.Errorf("redisstore: block %s: %w", uid, err)
	}
	defer s.life.Exit()
	b := s.k.base(uid)
	n, err := scriptBlock.Run(ctx, s.rdb, []string{b + sufBlocks, b + sufMeta}, blocked, strconv.Itoa(max)).Int()
	switch {
	case err != nil:
		return false, fmt.Errorf("redisstore: block %s: %w", uid, err)
	case n < 0:
		return false, fmt.Errorf("redisstore: block %s: %d uids listed: %w", uid, max, inbox.ErrTooManyBlocks)
	}
	return n == 1, nil
}

// Unblock implements inbox.Blocks with one script call.
func (s *Store) Unblock(ctx context.Context, uid, blocked string) (bool, error) {
	if err := s.beginBlocks(ctx, uid, blocked); err != nil {
		return false, fmt.Errorf("redisstore: unblock %s: %w", uid, err)
	}
	defer s.life.Exit()
	b := s.k.base(uid)
	n, err := scriptUnblock.Run(ctx, s.rdb, []string{b + sufBlocks, b + sufMeta}, blocked).Int()
	if err != nil {
		return false, fmt.Errorf("redisstore: unblock %s: %w", uid, err)
	}
	return n == 1, nil
}

// BlockList implements inbox.Blocks with one SMEMBERS; the list is capped
// by Block, so it is small.
func (s *Store) BlockList(ctx context.Context, uid string) ([]string, error) {
	if err := s.beginBlocks(ctx, uid); err != nil {
		return nil, fmt.Errorf("redisstore: block list %s: %w", uid, err)
	}
	defer s.life.Exit()
	out, err := s.rdb.SMembers(ctx, s.k.base(uid)+sufBlocks).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: block list %s: %w", uid, err)
	}
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	return out, nil
}

// IsBlocked implements inbox.Blocks with one SISMEMBER.
func (s *Store) IsBlocked(ctx context.Context, uid, peer string) (bool, error) {
	if err := s.beginBlocks(ctx, uid, peer); err != nil {
		return false, fmt.Errorf("redisstore: is blocked %s: %w", uid, err)
	}
	defer s.life.Exit()
	listed, err := s.rdb.SIsMember(ctx, s.k.base(uid)+sufBlocks, peer).Result()
	if err != nil {
		return false, fmt.Errorf("redisstore: is blocked %s: %w", uid, err)
	}
	return listed, nil
}

// beginBlocks is begin for a method that also names a second uid.
func (s *Store) beginBlocks(ctx context.Context, uid string, others ...string) error {
	for _, o := range others {
		if err := checkUID(o); err != nil {
			return err
		}
	}
	return s.begin(ctx, uid)
}

// SubmitChecksBlocks implements inbox.BlockingSubmitter: the submit script
// (and on a Cluster the first inbox's lock script) reads the recipient's
// block list, so a direct message needs no IsBlocked round trip.
func (s *Store) SubmitChecksBlocks() bool { return true }

var _ inbox.BlockingSubmitter = (*Store)(nil)

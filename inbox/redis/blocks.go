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
// that checks a message reads one key of the recipient's slot.

// scriptBlock adds ARGV[1] to the list KEYS[1] unless it holds ARGV[2] (> 0)
// uids already: the count and the add are one atomic step, so concurrent
// blocks on several nodes cannot pass the cap. It returns 1 when added, 0
// when listed already, -1 when the list is full.
var scriptBlock = redis.NewScript(`-- inboxmq block
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end
local max = tonumber(ARGV[2])
if max > 0 and redis.call('SCARD', KEYS[1]) >= max then return -1 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1`)

// Block implements inbox.Blocks with one script call.
func (s *Store) Block(ctx context.Context, uid, blocked string, max int) (bool, error) {
	if err := s.beginBlocks(ctx, uid, blocked); err != nil {
		return false, fmt.Errorf("redisstore: block %s: %w", uid, err)
	}
	defer s.life.Exit()
	n, err := scriptBlock.Run(ctx, s.rdb, []string{s.k.base(uid) + sufBlocks}, blocked, strconv.Itoa(max)).Int()
	switch {
	case err != nil:
		return false, fmt.Errorf("redisstore: block %s: %w", uid, err)
	case n < 0:
		return false, fmt.Errorf("redisstore: block %s: %d uids listed: %w", uid, max, inbox.ErrTooManyBlocks)
	}
	return n == 1, nil
}

// Unblock implements inbox.Blocks with one SREM.
func (s *Store) Unblock(ctx context.Context, uid, blocked string) (bool, error) {
	if err := s.beginBlocks(ctx, uid, blocked); err != nil {
		return false, fmt.Errorf("redisstore: unblock %s: %w", uid, err)
	}
	defer s.life.Exit()
	n, err := s.rdb.SRem(ctx, s.k.base(uid)+sufBlocks, blocked).Result()
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

package legacy

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// RedisSource reads the legacy hashes from the legacy server's Redis.
type RedisSource struct {
	Client redis.UniversalClient
}

var _ Source = RedisSource{}

// Len implements Source with HLEN.
func (r RedisSource) Len(ctx context.Context, hash string) (int, error) {
	n, err := r.Client.HLen(ctx, hash).Result()
	return int(n), err
}

// Scan implements Source with HSCAN, 100 fields a round trip, so a large
// hash never blocks the legacy server's Redis. HSCAN may return a field
// twice (when the hash is rehashed meanwhile): the second is skipped.
func (r RedisSource) Scan(ctx context.Context, hash string, fn func(field string, value []byte) error) error {
	seen := map[string]bool{}
	var cursor uint64
	for {
		kv, next, err := r.Client.HScan(ctx, hash, cursor, "*", 100).Result()
		if err != nil {
			return err
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if seen[kv[i]] {
				continue
			}
			seen[kv[i]] = true
			if err := fn(kv[i], []byte(kv[i+1])); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// scriptReplace sets or deletes a field only while it holds ARGV[2].
var scriptReplace = redis.NewScript(`-- inboxmq legacy replace
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1`)

// Replace implements Source with one script call: the compare and the
// write are one atomic step, so an entry the legacy server appended after
// the field was read is never lost.
func (r RedisSource) Replace(ctx context.Context, hash, field string, old, value []byte) (bool, error) {
	n, err := scriptReplace.Run(ctx, r.Client, []string{hash}, field, old, value).Int()
	if err != nil {
		return false, err
	}
	if n != 0 && n != 1 {
		return false, errors.New("unexpected reply from the replace script")
	}
	return n == 0, nil
}

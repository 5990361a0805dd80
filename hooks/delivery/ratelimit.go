package delivery

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// errWaitTooLong: a request would have to wait longer than the bound for
// its token.
var errWaitTooLong = errors.New("rate limit: the wait would exceed its bound")

// rateLimits is a token bucket per account. A request over the rate waits
// for its token rather than being refused: it waits on the connection's
// reader goroutine, so the connection's reads pause (as EMQX's limiter
// does), the sender slows to the rate, and nothing it was told is stored
// is lost. Only a request that would wait longer than maxWait is refused.
// Idle buckets are forgotten after a minute: by then they are full again,
// so forgetting changes nothing and the map stays as small as the set of
// active senders.
type rateLimits struct {
	limit   rate.Limit
	burst   int
	maxWait time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket // guarded by mu
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newRateLimits(perSecond float64, burst int, maxWait time.Duration) *rateLimits {
	if perSecond <= 0 {
		return nil
	}
	return &rateLimits{limit: rate.Limit(perSecond), burst: max(1, burst), maxWait: maxWait, buckets: make(map[string]*bucket)}
}

// wait takes one token from uid's bucket, waiting for it up to maxWait.
// It returns errWaitTooLong, at once and without taking a token, when the
// token would come later than that. A nil *rateLimits never waits.
func (r *rateLimits) wait(uid string) error {
	if r == nil {
		return nil
	}
	lim := r.bucket(uid)
	if r.maxWait <= 0 {
		if lim.Allow() {
			return nil
		}
		return errWaitTooLong
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.maxWait)
	defer cancel()
	if err := lim.Wait(ctx); err != nil {
		return errWaitTooLong
	}
	return nil
}

// bucket returns uid's limiter, creating it, and sweeps idle ones.
func (r *rateLimits) bucket(uid string) *rate.Limiter {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.swept) > time.Minute {
		for k, b := range r.buckets {
			if now.Sub(b.seen) > time.Minute {
				delete(r.buckets, k)
			}
		}
		r.swept = now
	}
	b, ok := r.buckets[uid]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(r.limit, r.burst)}
		r.buckets[uid] = b
	}
	b.seen = now
	return b.lim
}

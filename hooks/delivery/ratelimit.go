package delivery

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateLimits is a token bucket per account. Idle buckets are forgotten
// after a minute: by then they are full again, so forgetting changes
// nothing and the map stays as small as the set of active senders.
type rateLimits struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket // guarded by mu
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newRateLimits(perSecond float64, burst int) *rateLimits {
	if perSecond <= 0 {
		return nil
	}
	return &rateLimits{limit: rate.Limit(perSecond), burst: max(1, burst), buckets: make(map[string]*bucket)}
}

// allow takes one token from uid's bucket. A nil *rateLimits allows all.
func (r *rateLimits) allow(uid string) bool {
	if r == nil {
		return true
	}
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
	return b.lim.AllowN(now, 1)
}

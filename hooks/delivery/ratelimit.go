package delivery

import (
	"time"

	"github.com/inboxmq/inboxmq/internal/keyrate"
)

// rateLimits is the per-account message rate. A request over the rate
// waits for its token rather than being refused: it waits on the
// connection's reader goroutine, so the connection's reads pause (as EMQX's
// limiter does), the sender slows to the rate, and nothing it was told is
// stored is lost. Only a request that would wait longer than maxWait is
// refused.
type rateLimits struct {
	buckets *keyrate.Limiter
	maxWait time.Duration
}

func newRateLimits(perSecond float64, burst int, maxWait time.Duration) *rateLimits {
	if perSecond <= 0 {
		return nil
	}
	return &rateLimits{buckets: keyrate.NewLimiter(perSecond, max(1, burst)), maxWait: maxWait}
}

// wait takes one token from uid's bucket, waiting for it up to maxWait; it
// returns keyrate.ErrWaitTooLong at once, taking no token, when the token
// would come later. A nil *rateLimits never waits.
func (r *rateLimits) wait(uid string) error {
	if r == nil {
		return nil
	}
	return r.buckets.Wait(uid, r.maxWait)
}

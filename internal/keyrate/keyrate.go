// Package keyrate is a token bucket per key (an account, a connection, a
// remote address) that forgets idle keys, so its map stays as small as the
// set of active keys. It counts what it refused per key, so a log line can
// say how many were held back. Safe for concurrent use.
package keyrate

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter allows each key a burst of events and then a steady rate;
// events over it are counted and the count is reported with the next one
// allowed for that key. Keys idle for a minute are forgotten.
type Limiter struct {
	limit rate.Limit
	burst int

	mu    sync.Mutex
	keys  map[string]*limited // guarded by mu
	swept time.Time
}

type limited struct {
	lim        *rate.Limiter
	suppressed int
	seen       time.Time
}

// NewLimiter allows burst events per key, then perSecond.
func NewLimiter(perSecond float64, burst int) *Limiter {
	return &Limiter{limit: rate.Limit(perSecond), burst: burst, keys: make(map[string]*limited)}
}

// Allow reports whether an event for key may happen now, and how many
// for key were refused since the last one allowed.
func (l *Limiter) Allow(key string) (ok bool, suppressed int) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, e := range l.keys {
			if now.Sub(e.seen) > time.Minute {
				delete(l.keys, k)
			}
		}
		l.swept = now
	}
	e, found := l.keys[key]
	if !found {
		e = &limited{lim: rate.NewLimiter(l.limit, l.burst)}
		l.keys[key] = e
	}
	e.seen = now
	if !e.lim.AllowN(now, 1) {
		e.suppressed++
		return false, 0
	}
	suppressed, e.suppressed = e.suppressed, 0
	return true, suppressed
}

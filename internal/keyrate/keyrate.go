// Package keyrate is a token bucket per key (an account, a connection, a
// remote address) that forgets idle keys, so its map stays as small as the
// set of active keys. It counts what it refused per key, so a log line can
// say how many were held back. Safe for concurrent use.
package keyrate

import (
	"context"
	"errors"
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
	e := l.entryLocked(key, now)
	if !e.lim.AllowN(now, 1) {
		e.suppressed++
		return false, 0
	}
	suppressed, e.suppressed = e.suppressed, 0
	return true, suppressed
}

// ErrWaitTooLong: the event's token would come later than the caller
// would wait.
var ErrWaitTooLong = errors.New("keyrate: the wait for a token would exceed its bound")

// Wait takes a token for key, waiting for it up to maxWait (0: not at
// all). It returns ErrWaitTooLong at once, taking no token, when the token
// would come later than that. Waiting happens outside the lock.
func (l *Limiter) Wait(key string, maxWait time.Duration) error {
	l.mu.Lock()
	lim := l.entryLocked(key, time.Now()).lim
	l.mu.Unlock()
	if maxWait <= 0 {
		if lim.Allow() {
			return nil
		}
		return ErrWaitTooLong
	}
	ctx, cancel := context.WithTimeout(context.Background(), maxWait)
	defer cancel()
	if err := lim.Wait(ctx); err != nil {
		return ErrWaitTooLong
	}
	return nil
}

// entryLocked returns key's bucket, making it, and forgets idle keys once
// a minute. l.mu must be held.
func (l *Limiter) entryLocked(key string, now time.Time) *limited {
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
	return e
}

// Package logsafe keeps what clients send from flooding the log: Clip
// bounds a client-supplied string, and Limiter rate-limits repeated lines
// per key (a connection, a remote address) while counting what it held
// back. Both are safe for concurrent use.
package logsafe

import (
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"
)

// MaxString is how much of a client-supplied string Clip keeps.
const MaxString = 64

// Clip returns s cut to MaxString bytes on a rune boundary, with the
// length of what was cut, so a 65,000-byte client id or a filter of
// control bytes costs the log the same as a normal one (the handler still
// escapes what is kept).
func Clip(s string) string {
	if len(s) <= MaxString {
		return s
	}
	n := MaxString
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + fmt.Sprintf("…(%d bytes)", len(s))
}

// Limiter allows each key a burst of log lines and then a steady rate;
// lines over it are counted and the count is reported with the next line
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

// NewLimiter allows burst lines per key, then perSecond.
func NewLimiter(perSecond float64, burst int) *Limiter {
	return &Limiter{limit: rate.Limit(perSecond), burst: burst, keys: make(map[string]*limited)}
}

// Allow reports whether a line for key may be logged now, and how many
// lines for key were held back since the last one allowed.
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

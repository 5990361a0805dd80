// Package logsafe keeps what clients send from flooding the log: Clip
// bounds a client-supplied string (repeated lines are rate-limited with
// package keyrate). It is pure and safe for concurrent use.
package logsafe

import (
	"fmt"
	"unicode/utf8"
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

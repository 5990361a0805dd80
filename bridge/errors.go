package bridge

import (
	"fmt"
	"unicode/utf8"
)

// Error codes. Parse returns the first eight; the broker uses the rest for
// refusals of its own. They are sent to clients in the Error envelope, so
// they name what went wrong for the client and never how the broker works.
const (
	CodeBadJSON       = "bad_json"       // not valid JSON, not an object, or not valid UTF-8
	CodeMissingField  = "missing_field"  // a required field is absent or null
	CodeBadField      = "bad_field"      // a field has the wrong type or an invalid value
	CodeBadUID        = "bad_uid"        // a uid is not a valid uid
	CodeEmptyMessage  = "empty_message"  // msg or content is ""
	CodeTooLarge      = "too_large"      // the payload or a field is over its limit
	CodeUnknownMethod = "unknown_method" // _method_ names no method, or not the topic's
	CodeUnknownTopic  = "unknown_topic"  // the topic is not one of the im topics

	CodeForbidden   = "forbidden"    // the caller may not do this
	CodeNotFound    = "not_found"    // the message or user does not exist
	CodeInternal    = "internal"     // the broker failed; details are in its log only
	CodeRateLimited = "rate_limited" // the caller sends too fast
	CodeBlocked     = "blocked"      // the recipient has blocked the sender
	CodeTooLate     = "too_late"     // the message is older than the edit or delete window
)

// Codes lists every Code constant, so that a counter by code can start
// each one's series at 0 before the first refusal.
func Codes() []string {
	return []string{CodeBadJSON, CodeMissingField, CodeBadField, CodeBadUID, CodeEmptyMessage, CodeTooLarge,
		CodeUnknownMethod, CodeUnknownTopic, CodeForbidden, CodeNotFound, CodeInternal, CodeRateLimited,
		CodeBlocked, CodeTooLate}
}

// maxEcho caps how much of a client-supplied value an Error's Detail
// repeats, so a hostile payload cannot make error replies or logs large.
const maxEcho = 64

// Error is a refusal that can be shown to the client that caused it.
// Errors returned by Parse are always *Error.
type Error struct {
	Code   string // one of the Code constants
	Detail string // human-readable, names the field; never the whole payload
}

// Error returns "bridge: <code>: <detail>".
func (e *Error) Error() string {
	if e.Detail == "" {
		return "bridge: " + e.Code
	}
	return "bridge: " + e.Code + ": " + e.Detail
}

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// clip shortens a client-supplied string to at most maxEcho bytes, on a rune
// boundary, for quoting in a Detail.
func clip(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	n := maxEcho - len("...")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

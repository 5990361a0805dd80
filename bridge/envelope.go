package bridge

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/inboxmq/inboxmq/inbox"
)

// Errors from AppendEnvelope. Both mean a message that Parse and the
// broker would never have stored; the broker should log and skip it.
var (
	// ErrUnknownKind is returned for a message whose Kind has no envelope.
	ErrUnknownKind = errors.New("bridge: message kind has no envelope")
	// ErrBadMsgIDLiteral is returned for a notice whose Ref is not a JSON
	// number or string literal (see ValidateMsgIDLiteral).
	ErrBadMsgIDLiteral = errors.New("bridge: notice msgid is not a JSON number or string")
)

// AppendEnvelope appends the legacy JSON envelope delivering m to dst and
// returns the extended buffer. It does not allocate when dst has room.
//
// The envelope depends on m.Kind:
//
//	KindDirect   SendMsg   msgid=ID nickname avatar uid=Peer ct=Content extra
//	KindSent     MsgSent   msgid=ID to=Peer ct=Content extra cid=CID
//	KindDelete   DelMsg    msgid=Ref
//	KindNotice   SystemNot msgtype=MsgType ct=Content msgid=Ref (raw literal, "" renders 0) event
//	KindReceipt  ReadMsg   uid=Peer msgid=Ref
//	KindEdit     EditMsg   msgid=Ref uid=Peer ct=Content
//	KindReadSync ReadMsg   uid=Peer msgid=Ref unread=MsgType
//
// Every envelope ends with ts, m.Time: when the broker stored the message,
// in Unix milliseconds, so that a client shows the server's time and not
// the time the envelope happened to arrive (after a reconnect, say).
//
// A uid (uid, to) is written as a JSON number when it is all digits without
// a leading zero (or exactly "0") and at most 15 digits long, so that it is
// exact as a JavaScript number; otherwise as a JSON string. Strings are
// escaped like encoding/json without HTML escaping: quotes, backslashes,
// control characters, U+2028 and U+2029 are escaped, and each byte of
// invalid UTF-8 becomes \ufffd.
//
// On error dst is returned unchanged.
func AppendEnvelope(dst []byte, m inbox.Message) ([]byte, error) {
	switch m.Kind {
	case inbox.KindDirect:
		dst = append(dst, `{"_method_":"SendMsg","action":"3","msgid":`...)
		dst = appendString(dst, m.ID)
		dst = append(dst, `,"nickname":`...)
		dst = appendString(dst, m.Nickname)
		dst = append(dst, `,"avatar":`...)
		dst = appendString(dst, m.Avatar)
		dst = append(dst, `,"uid":`...)
		dst = appendUID(dst, m.Peer)
		dst = append(dst, `,"ct":`...)
		dst = appendString(dst, m.Content)
		dst = append(dst, `,"extra":`...)
		dst = appendString(dst, m.Extra)
	case inbox.KindSent:
		dst = append(dst, `{"_method_":"MsgSent","action":"6","msgid":`...)
		dst = appendString(dst, m.ID)
		dst = append(dst, `,"to":`...)
		dst = appendUID(dst, m.Peer)
		dst = append(dst, `,"ct":`...)
		dst = appendString(dst, m.Content)
		dst = append(dst, `,"extra":`...)
		dst = appendString(dst, m.Extra)
		dst = append(dst, `,"cid":`...)
		dst = appendString(dst, m.CID)
	case inbox.KindDelete:
		dst = append(dst, `{"_method_":"DelMsg","action":"4","msgid":`...)
		dst = appendString(dst, m.Ref)
	case inbox.KindNotice:
		// The literal is written raw, so it is checked first: a bad one
		// could otherwise break out of the envelope.
		lit := m.Ref
		if lit == "" {
			lit = "0"
		} else if !validMsgIDLiteral(lit) {
			return dst, fmt.Errorf("%w: message %q", ErrBadMsgIDLiteral, clip(m.ID))
		}
		dst = append(dst, `{"_method_":"SystemNot","action":"1","msgtype":`...)
		dst = strconv.AppendInt(dst, int64(m.MsgType), 10)
		dst = append(dst, `,"ct":`...)
		dst = appendString(dst, m.Content)
		dst = append(dst, `,"msgid":`...)
		dst = append(dst, lit...)
		dst = append(dst, `,"event":`...)
		dst = appendString(dst, m.Event)
	case inbox.KindReceipt:
		dst = append(dst, `{"_method_":"ReadMsg","action":"7","uid":`...)
		dst = appendUID(dst, m.Peer)
		dst = append(dst, `,"msgid":`...)
		dst = appendString(dst, m.Ref)
	case inbox.KindEdit:
		dst = append(dst, `{"_method_":"EditMsg","action":"8","msgid":`...)
		dst = appendString(dst, m.Ref)
		dst = append(dst, `,"uid":`...)
		dst = appendUID(dst, m.Peer)
		dst = append(dst, `,"ct":`...)
		dst = appendString(dst, m.Content)
	case inbox.KindReadSync:
		// The reader's own devices: uid is the peer whose messages were
		// read, and "unread" tells them apart from the peer's receipt.
		dst = append(dst, `{"_method_":"ReadMsg","action":"7","uid":`...)
		dst = appendUID(dst, m.Peer)
		dst = append(dst, `,"msgid":`...)
		dst = appendString(dst, m.Ref)
		dst = append(dst, `,"unread":`...)
		dst = strconv.AppendInt(dst, int64(m.MsgType), 10)
	default:
		return dst, fmt.Errorf("%w: kind %d", ErrUnknownKind, m.Kind)
	}
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, m.Time, 10)
	return append(dst, '}'), nil
}

// Logout returns the envelope telling a client it has been logged out,
// e.g. because the same uid connected elsewhere.
func Logout(reason string) []byte {
	const prefix = `{"_method_":"Logout","action":"5","reason":`
	dst := make([]byte, 0, len(prefix)+len(reason)+3)
	dst = append(dst, prefix...)
	dst = appendString(dst, reason)
	return append(dst, '}')
}

// Typing returns the envelope telling a user that from is typing to them,
// at ts (Unix milliseconds). It is never stored: a typing signal is only
// worth something while it is fresh.
func Typing(from string, ts int64) []byte {
	const prefix = `{"_method_":"Typing","action":"9","uid":`
	dst := make([]byte, 0, len(prefix)+len(from)+40)
	dst = append(dst, prefix...)
	dst = appendUID(dst, from)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, '}')
}

// ErrorEnvelope returns the envelope reporting e to the client that
// published on topic; cid is the request's cid, "" if it had none. A nil e
// is reported as CodeInternal.
func ErrorEnvelope(e *Error, topic, cid string) []byte {
	if e == nil {
		e = &Error{Code: CodeInternal}
	}
	const prefix = `{"_method_":"Error","action":"0","code":`
	dst := make([]byte, 0, len(prefix)+len(e.Code)+len(e.Detail)+len(topic)+len(cid)+40)
	dst = append(dst, prefix...)
	dst = appendString(dst, e.Code)
	dst = append(dst, `,"detail":`...)
	dst = appendString(dst, e.Detail)
	dst = append(dst, `,"topic":`...)
	dst = appendString(dst, topic)
	dst = append(dst, `,"cid":`...)
	dst = appendString(dst, cid)
	return append(dst, '}')
}

// ValidateMsgIDLiteral checks a systemadmin msgid kept as raw JSON: it must
// be a JSON number or string literal, in valid UTF-8, with no surrounding
// space, of at most MaxMsgIDBytes bytes, so that SystemNot can write it as
// is. It returns an *Error with CodeBadField or CodeTooLarge.
func ValidateMsgIDLiteral(lit string) error {
	if e := validateMsgIDLiteral(lit); e != nil {
		return e
	}
	return nil
}

func validateMsgIDLiteral(lit string) *Error {
	if len(lit) > MaxMsgIDBytes {
		return errorf(CodeTooLarge, "msgid exceeds %d bytes", MaxMsgIDBytes)
	}
	if !validMsgIDLiteral(lit) {
		return errorf(CodeBadField, "msgid must be a number or string")
	}
	return nil
}

// validMsgIDLiteral is hand-written rather than json.Valid so that
// AppendEnvelope stays allocation-free; FuzzMsgIDLiteral checks it against
// json.Valid.
func validMsgIDLiteral(lit string) bool {
	if len(lit) == 0 || len(lit) > MaxMsgIDBytes {
		return false
	}
	if lit[0] == '"' {
		return validStringLiteral(lit)
	}
	return validNumberLiteral(lit)
}

// validNumberLiteral matches -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumberLiteral(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = skipDigits(s, i)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := skipDigits(s, i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(s)
}

func skipDigits(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// validStringLiteral reports whether s is exactly one JSON string literal
// in valid UTF-8.
func validStringLiteral(s string) bool {
	if len(s) < 2 || s[0] != '"' {
		return false
	}
	for i := 1; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			return i == len(s)-1
		case c < 0x20:
			return false
		case c == '\\':
			if i+1 >= len(s) {
				return false
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s) || !isHex(s[i+2]) || !isHex(s[i+3]) || !isHex(s[i+4]) || !isHex(s[i+5]) {
					return false
				}
				i += 6
			default:
				return false
			}
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return false
			}
			i += size
		}
	}
	return false // no closing quote
}

func isHex(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// appendUID writes a uid as a JSON number when legacy clients had it as
// one: digits only, no leading zero, and at most 15 digits so that it is
// exact as a JavaScript number (2^53 has 16 digits).
func appendUID(dst []byte, uid string) []byte {
	if numericUID(uid) {
		return append(dst, uid...)
	}
	return appendString(dst, uid)
}

func numericUID(s string) bool {
	if len(s) == 0 || len(s) > 15 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string exactly as encoding/json does with
// SetEscapeHTML(false); FuzzAppendEnvelope checks that it does.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but they end a line in JavaScript source; legacy
			// web clients may still eval() what they receive.
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

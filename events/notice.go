package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/bridge"
)

// Limits of a back-end notice.
const (
	// MaxNoticeUIDs is the most uids one notice may name in toWho.
	MaxNoticeUIDs = 1000
	// MaxNoticeContent is the most bytes of content (decoded), the same
	// limit as a client's message.
	MaxNoticeContent = 64 << 10
	// MaxNoticeBytes is the largest payload ParseNotice decodes: room for
	// the content escaped, MaxNoticeUIDs quoted uids and the other fields.
	MaxNoticeBytes = 256 << 10
)

// ErrBadNotice is wrapped by every error of ParseNotice.
var ErrBadNotice = errors.New("events: bad notice")

// Notice is a back-end's request to deliver a system notice (SystemNot).
type Notice struct {
	// UIDs are the recipients, valid uids without duplicates, in the order
	// given; nil means everyone.
	UIDs      []string
	NeedStore bool   // legacy: the back-end asks for the notice to be stored
	Content   string // non-empty, at most MaxNoticeContent bytes
	MsgType   int    // int32 range; 0 when absent
	Event     string // at most bridge.MaxEventBytes bytes; "" when absent
	// MsgID is the raw JSON literal of msgid, a number or a string, echoed
	// as is in the SystemNot envelope (bridge.ValidateMsgIDLiteral); "0"
	// when absent.
	MsgID string
}

// ParseNotice parses the legacy notice a back-end publishes:
//
//	{"toWho":[10021,"10022"],"needStore":true,"content":"...","msgtype":0,"msgid":0,"event":""}
//
// The payload must be one JSON object in valid UTF-8, of at most
// MaxNoticeBytes. Keys are matched exactly; unknown keys are ignored; null
// counts as absent; when a key appears twice the last one wins.
//
//   - toWho: an array of uids, each a JSON string or a non-negative integer
//     literal, each valid for acl.ValidUID, at most MaxNoticeUIDs entries;
//     duplicates are dropped. Absent or [] means everyone.
//   - needStore: a boolean; false when absent.
//   - content: a string, required, non-empty, at most MaxNoticeContent bytes.
//   - msgtype: an integer in the int32 range; 0 when absent.
//   - msgid: a number or a string, kept as its JSON literal; "0" when absent.
//   - event: a string of at most bridge.MaxEventBytes bytes; "" when absent.
//
// Errors wrap ErrBadNotice and name the field, never echoing more than a
// short excerpt of the payload. ParseNotice is pure and safe for
// concurrent use.
func ParseNotice(payload []byte) (Notice, error) {
	if len(payload) > MaxNoticeBytes {
		return Notice{}, badNotice("payload exceeds %d bytes", MaxNoticeBytes)
	}
	// encoding/json would turn invalid UTF-8 into U+FFFD without a word.
	if !utf8.Valid(payload) {
		return Notice{}, badNotice("payload is not valid UTF-8")
	}
	if t := bytes.TrimLeft(payload, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return Notice{}, badNotice("payload must be a JSON object")
	}
	var o map[string]json.RawMessage
	if err := json.Unmarshal(payload, &o); err != nil {
		return Notice{}, badNotice("invalid JSON: %v", err)
	}
	n := Notice{MsgID: "0"}
	var err error
	if n.UIDs, err = noticeUIDs(field(o, "toWho")); err != nil {
		return Notice{}, err
	}
	if raw := field(o, "needStore"); raw != nil {
		if err := json.Unmarshal(raw, &n.NeedStore); err != nil {
			return Notice{}, badNotice("needStore must be a boolean")
		}
	}
	raw := field(o, "content")
	if raw == nil {
		return Notice{}, badNotice("content is required")
	}
	if n.Content, err = noticeString(raw, "content", MaxNoticeContent); err != nil {
		return Notice{}, err
	}
	if n.Content == "" {
		return Notice{}, badNotice("content must not be empty")
	}
	if raw := field(o, "msgtype"); raw != nil {
		// ParseInt refuses fractions and exponents; JSON has no '+'.
		v, err := strconv.ParseInt(string(raw), 10, 32)
		if err != nil {
			return Notice{}, badNotice("msgtype must be an integer in the int32 range")
		}
		n.MsgType = int(v)
	}
	if raw := field(o, "msgid"); raw != nil {
		if c := raw[0]; c != '"' && c != '-' && !bridge.IsDigits(raw[:1]) {
			return Notice{}, badNotice("msgid must be a number or a string")
		}
		if err := bridge.ValidateMsgIDLiteral(string(raw)); err != nil {
			return Notice{}, badNotice("msgid: %v", err)
		}
		n.MsgID = string(raw)
	}
	if raw := field(o, "event"); raw != nil {
		if n.Event, err = noticeString(raw, "event", bridge.MaxEventBytes); err != nil {
			return Notice{}, err
		}
	}
	return n, nil
}

// field returns key's raw value; nil when absent or null.
func field(o map[string]json.RawMessage, key string) json.RawMessage {
	raw := o[key]
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

// noticeString decodes a JSON string of at most max bytes.
func noticeString(raw json.RawMessage, key string, max int) (string, error) {
	if raw[0] != '"' {
		return "", badNotice("%s must be a string", key)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", badNotice("%s must be a string", key)
	}
	if len(s) > max {
		return "", badNotice("%s exceeds %d bytes", key, max)
	}
	return s, nil
}

// noticeUIDs reads toWho; nil raw (absent) or [] is everyone (nil).
func noticeUIDs(raw json.RawMessage) ([]string, error) {
	if raw == nil {
		return nil, nil
	}
	if raw[0] != '[' {
		return nil, badNotice("toWho must be an array")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, badNotice("toWho must be an array")
	}
	if len(items) > MaxNoticeUIDs {
		return nil, badNotice("toWho names %d uids, more than %d", len(items), MaxNoticeUIDs)
	}
	if len(items) == 0 {
		return nil, nil
	}
	uids := make([]string, 0, len(items))
	seen := make(map[string]struct{}, len(items))
	for i, it := range items {
		var uid string
		switch c := it[0]; {
		case c == '"':
			if err := json.Unmarshal(it, &uid); err != nil {
				return nil, badNotice("toWho[%d] must be a string or a non-negative integer", i)
			}
		case bridge.IsDigits(it):
			// Kept as text: uids beyond 2^53 stay exact.
			uid = string(it)
		default:
			return nil, badNotice("toWho[%d] must be a string or a non-negative integer", i)
		}
		if !acl.ValidUID(uid) {
			return nil, badNotice("toWho[%d] %q is not 1 to %d of [A-Za-z0-9_.-]", i, excerpt([]byte(uid)), acl.MaxUIDLen)
		}
		if _, dup := seen[uid]; dup {
			continue
		}
		seen[uid] = struct{}{}
		uids = append(uids, uid)
	}
	return uids, nil
}

func badNotice(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadNotice, fmt.Sprintf(format, args...))
}

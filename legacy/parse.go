package legacy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/internal/logsafe"
)

// Kind is which legacy hash an entry comes from.
type Kind uint8

const (
	KindMessage Kind = iota + 1 // chat_history: a direct message
	KindNotice                  // nodejs_notification: a notice
)

func (k Kind) String() string {
	if k == KindNotice {
		return "notice"
	}
	return "message"
}

// Entry is one element of a legacy array, parsed.
type Entry struct {
	Kind  Kind
	Index int    // position in its array, from 0
	Raw   []byte // the element as stored, kept for what stays behind
	Err   error  // non-nil: malformed, and why; the fields below are unset

	UID      string // whose inbox: the hash field
	From     string // message: the sender
	Content  string
	Extra    string // message: extra, as a string (an object or array is kept as its JSON)
	Nickname string // message: the sender's nickname, when valid
	Avatar   string // message: the sender's avatar, when valid
	Time     int64  // when it was sent, Unix ms; 0 when the entry has none
	MsgType  int    // notice
	Event    string // notice
	Ref      string // notice: the legacy msgid literal ("0" when none)
	ID       string // the import id: the same entry gives the same id on every run
}

// MaxContent bounds content when the caller gives no limit.
const MaxContent = bridge.DefaultMaxContent

// ParseField parses the value of one hash field. err is set when the value
// as a whole is unusable (not a JSON array); otherwise every element gives
// one Entry, malformed ones with Err set. maxContent 0 means MaxContent.
func ParseField(kind Kind, uid string, value []byte, maxContent int) ([]Entry, error) {
	if !acl.ValidUID(uid) {
		return nil, errors.New("field is not a valid uid")
	}
	if maxContent <= 0 {
		maxContent = MaxContent
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(value, &elems); err != nil {
		return nil, errors.New("value is not a JSON array")
	}
	out := make([]Entry, 0, len(elems))
	seen := map[string]int{} // content id -> occurrences so far
	for i, raw := range elems {
		e := Entry{Kind: kind, Index: i, Raw: raw, UID: uid}
		obj, err := object(raw, kind == KindNotice)
		if err == nil {
			if kind == KindNotice {
				err = e.notice(obj, maxContent)
			} else {
				err = e.message(obj, maxContent)
			}
		}
		if err != nil {
			out = append(out, Entry{Kind: kind, Index: i, Raw: raw, UID: uid, Err: err})
			continue
		}
		// Identical entries (the same text sent twice in one second) are
		// told apart by their occurrence, not by their index: the legacy
		// server may have removed entries before them since the last run.
		base := e.contentID()
		e.ID = base + "." + strconv.Itoa(seen[base])
		seen[base]++
		out = append(out, e)
	}
	return out, nil
}

// object decodes one array element: an object, or (notices, and liberally
// messages too) a JSON string holding one.
func object(raw json.RawMessage, stringsExpected bool) (map[string]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, errors.New("not a JSON string")
		}
		raw = []byte(s)
	} else if stringsExpected && (len(raw) == 0 || raw[0] != '{') {
		return nil, errors.New("not a JSON string or object")
	}
	var o map[string]json.RawMessage
	if err := json.Unmarshal(raw, &o); err != nil || o == nil {
		return nil, errors.New("not a JSON object")
	}
	return o, nil
}

func (e *Entry) message(o map[string]json.RawMessage, maxContent int) error {
	from, err := firstUID(o, "from", "fromuid", "from_uid", "sender", "senderId")
	if err != nil {
		return err
	}
	if from == "" && strings.EqualFold(text(o, "_method_"), "SendMsg") {
		from, err = firstUID(o, "uid") // a stored SendMsg envelope: uid is the sender
		if err != nil {
			return err
		}
	}
	switch {
	case from == "":
		return errors.New("no sender (from)")
	case from == e.UID:
		return errors.New("sender is the recipient")
	}
	to, err := firstUID(o, "to", "touid", "to_uid")
	if err != nil {
		return err
	}
	if to != "" && to != e.UID {
		return errors.New("to is not the hash field (the recipient)")
	}
	e.From = from
	if e.Content, err = content(o, maxContent, "msg", "content", "ct", "message", "text"); err != nil {
		return err
	}
	e.Extra = loose(o["extra"])
	if n := text(o, "nickname"); utf8.RuneCountInString(n) <= bridge.MaxNicknameRunes {
		e.Nickname = n
	}
	if a := text(o, "avatar"); len(a) <= bridge.MaxAvatarBytes {
		e.Avatar = a
	}
	e.Time = firstTime(o)
	return nil
}

func (e *Entry) notice(o map[string]json.RawMessage, maxContent int) error {
	var err error
	if e.Content, err = content(o, maxContent, "content", "ct", "msg", "message", "text"); err != nil {
		return err
	}
	if raw, ok := o["msgtype"]; ok && string(raw) != "null" {
		n, err := strconv.Atoi(strings.Trim(string(raw), `"`))
		if err != nil {
			return errors.New("msgtype is not an integer")
		}
		e.MsgType = n
	}
	e.Event = text(o, "event")
	if len(e.Event) > bridge.MaxEventBytes {
		return fmt.Errorf("event over %d bytes", bridge.MaxEventBytes)
	}
	e.Ref = "0"
	if raw, ok := o["msgid"]; ok && string(raw) != "null" {
		if err := bridge.ValidateMsgIDLiteral(string(raw)); err != nil {
			return fmt.Errorf("msgid: %w", err)
		}
		e.Ref = string(raw)
	}
	e.Time = firstTime(o)
	return nil
}

// contentID names an entry by what it says, so that a re-run finds it.
func (e *Entry) contentID() string {
	h := sha256.New()
	for _, s := range []string{e.Kind.String(), e.UID, e.From, e.Content, e.Extra, strconv.FormatInt(e.Time, 10),
		strconv.Itoa(e.MsgType), e.Event, e.Ref} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// text returns a string or number field as a string ("" when absent or of
// another type).
func text(o map[string]json.RawMessage, key string) string {
	raw, ok := o[key]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// loose returns a field as a string: a string as is, anything else (an
// object, a number) as its JSON; "" for absent or null.
func loose(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return ""
	}
	return buf.String()
}

// firstUID returns the first of keys present, as a uid ("" when none is).
func firstUID(o map[string]json.RawMessage, keys ...string) (string, error) {
	for _, k := range keys {
		raw, ok := o[k]
		if !ok || string(raw) == "null" {
			continue
		}
		uid := text(o, k)
		if !acl.ValidUID(uid) {
			return "", fmt.Errorf("%s is not a valid uid", k)
		}
		return uid, nil
	}
	return "", nil
}

func content(o map[string]json.RawMessage, max int, keys ...string) (string, error) {
	for _, k := range keys {
		if s := text(o, k); s != "" {
			if len(s) > max {
				return "", fmt.Errorf("%s over %d bytes", k, max)
			}
			if !utf8.ValidString(s) {
				return "", fmt.Errorf("%s is not valid UTF-8", k)
			}
			return s, nil
		}
	}
	return "", fmt.Errorf("no content (%s)", strings.Join(keys, ", "))
}

// firstTime reads the send time: Unix seconds or milliseconds (a number or
// a numeric string), or a date ("2006-01-02 15:04:05" in UTC, RFC 3339).
func firstTime(o map[string]json.RawMessage) int64 {
	for _, k := range []string{"time", "ts", "timestamp", "sendtime", "send_time", "created_at", "date"} {
		if ms := parseTime(text(o, k)); ms > 0 {
			return ms
		}
	}
	return 0
}

func parseTime(s string) int64 {
	if s == "" {
		return 0
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f <= 0 || f > 1e15 {
			return 0
		}
		if f < 1e11 { // seconds: 1e11 s is the year 5138
			f *= 1000
		}
		return int64(f)
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006/01/02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli()
		}
	}
	return 0
}

func clip(s string) string { return logsafe.Clip(s) }

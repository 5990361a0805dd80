package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Event types the broker emits. Other non-empty types are carried as well,
// so a new type needs no change here; sinks choose what they deliver.
const (
	TypePush    = "push"    // a message was stored for a uid that has no live connection
	TypeLogin   = "login"   // a uid connected
	TypeLogout  = "logout"  // a uid's connection ended
	TypeMessage = "message" // a direct message was sent
	// TypePushCancel: messages a push event announced were acknowledged or
	// read on some device afterwards: clear the notification, set the badge.
	TypePushCancel = "push_cancel"
	// TypeRead: a uid marked its conversation with a peer read (on any
	// device, over MQTT or HTTP); "unread" is its new unread total.
	TypeRead = "read"
)

// Keys that Event's JSON form sets itself; Data must not use them.
const (
	KeyEvent = "event" // the Type
	KeyTime  = "time"  // Unix milliseconds
	KeyID    = "id"    // the delivery id, when set
)

// Errors of Event.Validate, also counted as Stats.Invalid by Emit.
var (
	ErrNoType      = errors.New("events: event has no type")
	ErrReservedKey = errors.New(`events: Data uses a reserved key ("event", "time" or "id")`)
)

// Event is one JSON object sent to the back-end.
//
// Its JSON form (MarshalJSON) is a single object: "event" (Type), "time"
// (Time in Unix milliseconds, a JSON integer), "id" (the delivery id, when
// set), then every Data field at the top level, in key order:
//
//	{"event":"push","time":1735689600123,"from":"10001","msgid":"382697444573446144",...}
//
// Data values are encoded by encoding/json without HTML escaping.
type Event struct {
	Type string         // TypePush, TypeLogin, ...; must not be ""
	Time time.Time      // when it happened; Emit sets it when zero
	Data map[string]any // payload fields; not "event", "time" or "id"; not changed after Emit
	// ID is the delivery id: the same on every attempt to deliver the
	// event, on any node, so receivers can drop repeats. Emit sets it.
	ID string

	raw []byte // the JSON form as stored, sent as is on a retry
}

// Validate reports whether e can be encoded: a non-empty Type and no
// reserved key in Data. It does not check that Data's values encode.
func (e Event) Validate() error {
	if e.Type == "" {
		return ErrNoType
	}
	if _, ok := e.Data[KeyEvent]; ok {
		return ErrReservedKey
	}
	if _, ok := e.Data[KeyTime]; ok {
		return ErrReservedKey
	}
	if _, ok := e.Data[KeyID]; ok {
		return ErrReservedKey
	}
	return nil
}

// MarshalJSON returns e's JSON form (see Event). A zero Time is encoded as
// the time of the call. It fails when Validate does or a Data value cannot
// be encoded (a channel, a NaN, ...).
func (e Event) MarshalJSON() ([]byte, error) {
	if e.raw != nil {
		return e.raw, nil
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Previews and nicknames are shown as is; "<" need not become \u003c.
	enc.SetEscapeHTML(false)

	buf.WriteString(`{"event":`)
	if err := enc.Encode(e.Type); err != nil {
		return nil, fmt.Errorf("events: encode type: %w", err)
	}
	trimNewline(&buf)
	buf.WriteString(`,"time":`)
	buf.WriteString(strconv.FormatInt(t.UnixMilli(), 10))
	if e.ID != "" {
		buf.WriteString(`,"id":`)
		if err := enc.Encode(e.ID); err != nil {
			return nil, fmt.Errorf("events: encode id: %w", err)
		}
		trimNewline(&buf)
	}
	if len(e.Data) == 0 {
		buf.WriteByte('}')
		return buf.Bytes(), nil
	}
	// Data is encoded as one map, so keys come out sorted, and then spliced
	// in: its leading '{' becomes the ',' after "time".
	start := buf.Len()
	if err := enc.Encode(e.Data); err != nil {
		return nil, fmt.Errorf("events: encode %s data: %w", e.Type, err)
	}
	trimNewline(&buf)
	b := buf.Bytes()
	b[start] = ','
	return b, nil
}

// trimNewline drops the '\n' json.Encoder writes after each value.
func trimNewline(buf *bytes.Buffer) {
	if n := buf.Len(); n > 0 && buf.Bytes()[n-1] == '\n' {
		buf.Truncate(n - 1)
	}
}

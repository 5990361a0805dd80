package inbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Outbox keeps events for the back-end until their receiver took them:
// each entry waits in the store, per sink, from the moment it is emitted
// until a delivery succeeds or it is older than its maximum age, so a
// receiver outage or a broker restart loses none, and any node sharing the
// store may deliver it.
type Outbox interface {
	// EnqueueEvents stores entries, each due at its Due.
	EnqueueEvents(ctx context.Context, entries []OutboxEntry) error

	// ClaimDueEvents takes up to limit entries of sink due at or before
	// now, earliest first, and makes them due again at now+lease: an entry
	// whose claimer dies is delivered again after the lease (at least
	// once). Each entry is claimed by one caller at a time, on any node.
	ClaimDueEvents(ctx context.Context, sink string, now time.Time, lease time.Duration, limit int) ([]OutboxEntry, error)

	// RescheduleEvent stores e's Attempt and makes it due at e.Due, if it
	// is still held.
	RescheduleEvent(ctx context.Context, e OutboxEntry) error

	// DeleteEvents removes entries of sink by id (delivered or given up).
	DeleteEvents(ctx context.Context, sink string, ids []string) error

	// OutboxLen counts the entries waiting for sink.
	OutboxLen(ctx context.Context, sink string) (int, error)
}

// OutboxEntry is one event waiting for one sink.
type OutboxEntry struct {
	Sink    string
	ID      string    // the delivery id: stable across retries, unique per sink
	Type    string    // the event's type
	Body    []byte    // the event's JSON form, sent as is on every attempt
	Created time.Time // when the event was emitted (millisecond precision)
	Due     time.Time // the next attempt (millisecond precision)
	Attempt int       // attempts made so far
}

// outboxRecord is the stored form of an entry (its sink and id are in the key).
type outboxRecord struct {
	T string          `json:"t"`
	B json.RawMessage `json:"b"`
	C int64           `json:"c"`
	A int             `json:"a,omitempty"`
}

// EncodeOutboxEntry returns the stored form of e without its sink, id and due time.
func EncodeOutboxEntry(e OutboxEntry) ([]byte, error) {
	if !json.Valid(e.Body) {
		return nil, fmt.Errorf("outbox entry %s: body is not JSON", e.ID)
	}
	return json.Marshal(outboxRecord{T: e.Type, B: e.Body, C: e.Created.UnixMilli(), A: e.Attempt})
}

// DecodeOutboxEntry parses what EncodeOutboxEntry wrote into e's other fields.
func DecodeOutboxEntry(b []byte, e *OutboxEntry) error {
	var r outboxRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("decode outbox entry %s: %w", e.ID, err)
	}
	e.Type, e.Body, e.Created, e.Attempt = r.T, []byte(r.B), time.UnixMilli(r.C), r.A
	return nil
}

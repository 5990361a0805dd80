package events

import (
	"context"
	"fmt"
)

// Sink delivers events somewhere. The Outbox calls Send from one worker
// goroutine per sink, never concurrently with itself; Send must not keep
// batch (its backing array is reused) and must return soon after ctx ends,
// which is how Outbox.Close stops a slow sink.
//
// A nil error means every event was delivered; any error means the Outbox
// tries the batch's events again (one at a time), so a sink may get an
// event twice. A sink may retry quickly inside Send; the Outbox retries
// with backoff for as long as events.max_age.
type Sink interface {
	Name() string
	Send(ctx context.Context, batch []Event) error
}

// Filter is an optional extra of a Sink: the Outbox stores for a sink that
// implements it only the events whose type it wants.
type Filter interface {
	Wants(eventType string) bool
}

// SendError is returned by a Sink that failed to deliver Failed events of
// a batch (and delivered the rest).
type SendError struct {
	Failed int
	Err    error // why; for many failures, the first few reasons
}

func (e *SendError) Error() string {
	return fmt.Sprintf("events: %d event(s) not delivered: %v", e.Failed, e.Err)
}

func (e *SendError) Unwrap() error { return e.Err }

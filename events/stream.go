package events

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// DefaultStreamMaxLen is StreamOptions.MaxLen when 0.
const DefaultStreamMaxLen = 100000

// StreamOptions configure a StreamSink.
type StreamOptions struct {
	Client redis.UniversalClient // required; owned by the caller
	Key    string                // the stream, e.g. "inboxmq:events"; required
	// MaxLen caps the stream (XADD MAXLEN ~): the oldest entries go first.
	MaxLen int64
	// Name labels the sink; "stream" when empty.
	Name string
}

// StreamSink appends each event to a Redis Stream (XADD) with the fields
// "id" (the delivery id), "event" (the type) and "body" (the event's JSON
// form). Unlike the pub/sub channels, a stream keeps entries for consumers
// that were away: read it with XREAD or a consumer group (XREADGROUP and
// XACK). Delivery is at least once, so an entry may appear twice (a retry
// after a lost reply): consumers drop repeats by "id". A batch is one
// pipeline.
type StreamSink struct {
	client redis.UniversalClient
	key    string
	maxLen int64
	name   string
}

var _ Sink = (*StreamSink)(nil)

// NewStreamSink checks o and returns the sink.
func NewStreamSink(o StreamOptions) (*StreamSink, error) {
	if o.Client == nil {
		return nil, errors.New("events: stream sink needs a Redis client")
	}
	if o.Key == "" {
		return nil, errors.New("events: stream sink needs a key")
	}
	if o.MaxLen <= 0 {
		o.MaxLen = DefaultStreamMaxLen
	}
	if o.Name == "" {
		o.Name = "stream"
	}
	return &StreamSink{client: o.Client, key: o.Key, maxLen: o.MaxLen, name: o.Name}, nil
}

// Name returns the sink's name, "stream" by default.
func (s *StreamSink) Name() string { return s.name }

// Send appends batch in one pipeline. Any failure fails the batch.
func (s *StreamSink) Send(ctx context.Context, batch []Event) error {
	pipe := s.client.Pipeline()
	for _, e := range batch {
		body, err := e.MarshalJSON()
		if err != nil {
			return &SendError{Failed: len(batch), Err: err}
		}
		pipe.XAdd(ctx, &redis.XAddArgs{
			Stream: s.key, MaxLen: s.maxLen, Approx: true,
			Values: []any{"id", e.ID, "event", e.Type, "body", string(body)},
		})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return &SendError{Failed: len(batch), Err: fmt.Errorf("events: stream %s: %w", s.key, err)}
	}
	return nil
}

package events

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/redis/go-redis/v9"
)

// DefaultChannels returns the legacy channel of each event type: the
// channels the socket.io server published on, so existing back-end
// consumers keep working. "message" is not published by default.
func DefaultChannels() map[string]string {
	return map[string]string{
		TypePush:    "chat_message_channel",
		TypeLogin:   "login_message_channel",
		TypeLogout:  "login_message_channel",
		TypeMessage: "",
	}
}

// RedisOptions configure a RedisSink.
type RedisOptions struct {
	// Client publishes; required. Owned by the caller, who closes it.
	Client redis.UniversalClient
	// Channels maps an event type to its channel, over DefaultChannels: a
	// key given here replaces the default, "" turns a type off. Types in
	// neither are not published.
	Channels map[string]string
	// Name labels the sink in Stats and logs; "redis" when empty.
	Name string
}

// RedisSink PUBLISHes each event's JSON form (see Event) on the channel
// of its type. A batch goes out as one pipeline. It implements Filter, so
// a Dispatcher queues for it only the types it publishes.
type RedisSink struct {
	client   redis.UniversalClient
	channels map[string]string
	name     string
}

var (
	_ Sink   = (*RedisSink)(nil)
	_ Filter = (*RedisSink)(nil)
)

// NewRedisSink returns the sink. A nil Client makes every Send fail.
func NewRedisSink(o RedisOptions) *RedisSink {
	ch := DefaultChannels()
	maps.Copy(ch, o.Channels)
	if o.Name == "" {
		o.Name = "redis"
	}
	return &RedisSink{client: o.Client, channels: ch, name: o.Name}
}

// Name returns the sink's name, "redis" by default.
func (s *RedisSink) Name() string { return s.name }

// Wants reports whether events of this type are published.
func (s *RedisSink) Wants(eventType string) bool { return s.channels[eventType] != "" }

// Channel returns the channel events of this type go to; "" for none.
func (s *RedisSink) Channel(eventType string) string { return s.channels[eventType] }

// Send publishes batch in one pipeline; events of a type without a
// channel are skipped. When some fail it returns a *SendError.
func (s *RedisSink) Send(ctx context.Context, batch []Event) error {
	if s.client == nil {
		return errors.New("events: RedisSink has no Client")
	}
	var (
		failed int
		errs   []error
	)
	pipe := s.client.Pipeline()
	for _, e := range batch {
		ch := s.channels[e.Type]
		if ch == "" {
			continue
		}
		body, err := e.MarshalJSON()
		if err != nil {
			failed++
			if len(errs) < 3 {
				errs = append(errs, err)
			}
			continue
		}
		pipe.Publish(ctx, ch, body)
	}
	if pipe.Len() > 0 {
		n := pipe.Len()
		cmds, err := pipe.Exec(ctx)
		pubFailed := 0
		for _, c := range cmds {
			if c.Err() != nil {
				pubFailed++
			}
		}
		if err != nil {
			if pubFailed == 0 {
				pubFailed = n // the pipeline failed as a whole
			}
			errs = append(errs, fmt.Errorf("events: redis publish: %w", err))
		}
		failed += pubFailed
	}
	if failed == 0 {
		return nil
	}
	return &SendError{Failed: failed, Err: errors.Join(errs...)}
}

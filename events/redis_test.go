package events

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// subscribeAll subscribes a real go-redis client to every channel and
// returns its message channel once Redis confirmed the subscription.
func subscribeAll(t *testing.T, c *redis.Client) <-chan *redis.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps := c.PSubscribe(ctx, "*")
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatalf("psubscribe: %v", err)
	}
	t.Cleanup(func() {
		if err := ps.Close(); err != nil {
			t.Errorf("close subscription: %v", err)
		}
	})
	return ps.Channel()
}

func nextMessage(t *testing.T, ch <-chan *redis.Message) *redis.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message published within 5 s")
		return nil
	}
}

func TestRedisSinkPublishesOnTypeChannels(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	c := srv.Client(t)
	msgs := subscribeAll(t, c)
	s := NewRedisSink(RedisOptions{Client: c})

	batch := []Event{
		pushEvent(1),
		{Type: TypeMessage, Data: map[string]any{"uid": "10021"}},
		{Type: TypeLogin, Data: map[string]any{"uid": "10021"}},
		{Type: "unknown", Data: map[string]any{"uid": "10021"}},
		{Type: TypeLogout, Data: map[string]any{"uid": "10021"}},
	}
	if err := s.Send(context.Background(), batch); err != nil {
		t.Fatalf("Send: %v", err)
	}
	// A marker published after the batch: whatever the sink published
	// arrives before it, in order.
	if err := c.Publish(context.Background(), "marker", "end").Err(); err != nil {
		t.Fatal(err)
	}
	want := []struct{ channel, event string }{
		{"chat_message_channel", TypePush},
		{"login_message_channel", TypeLogin},
		{"login_message_channel", TypeLogout},
		{"marker", ""},
	}
	for _, w := range want {
		m := nextMessage(t, msgs)
		if m.Channel != w.channel {
			t.Fatalf("message on %q (%s), want %q", m.Channel, m.Payload, w.channel)
		}
		if w.event == "" {
			continue
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(m.Payload), &got); err != nil {
			t.Fatalf("payload %q: %v", m.Payload, err)
		}
		if got["event"] != w.event || got["uid"] != "10021" {
			t.Errorf("payload on %s = %s, want a %s event for 10021", m.Channel, m.Payload, w.event)
		}
	}
	if m := nextMessageOrNil(msgs); m != nil {
		t.Errorf("unexpected message on %s: %s", m.Channel, m.Payload)
	}
}

func nextMessageOrNil(ch <-chan *redis.Message) *redis.Message {
	select {
	case m := <-ch:
		return m
	case <-time.After(100 * time.Millisecond):
		return nil
	}
}

func TestRedisSinkChannels(t *testing.T) {
	s := NewRedisSink(RedisOptions{Channels: map[string]string{TypeMessage: "im_events", TypeLogout: "", "custom": "custom_channel"}})
	tests := []struct {
		eventType, want string
	}{
		{TypePush, "chat_message_channel"}, // default kept
		{TypeLogin, "login_message_channel"},
		{TypeLogout, ""}, // turned off
		{TypeMessage, "im_events"},
		{"custom", "custom_channel"},
		{"other", ""},
	}
	for _, tt := range tests {
		if got := s.Channel(tt.eventType); got != tt.want {
			t.Errorf("Channel(%q) = %q, want %q", tt.eventType, got, tt.want)
		}
		if got := s.Wants(tt.eventType); got != (tt.want != "") {
			t.Errorf("Wants(%q) = %v", tt.eventType, got)
		}
	}
	if d := DefaultChannels(); d[TypeMessage] != "" || d[TypeLogout] != "login_message_channel" {
		t.Errorf("NewRedisSink changed the defaults: %v", d)
	}
}

func TestRedisSinkThroughOutbox(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	c := srv.Client(t)
	msgs := subscribeAll(t, c)
	s := NewRedisSink(RedisOptions{Client: c, Channels: map[string]string{TypeMessage: "im_events"}})
	o := fastOutbox(t, openStore(t, t.TempDir()), []Sink{s}, time.Hour)
	o.Emit(Event{Type: TypeMessage, Data: map[string]any{"from": "10001", "uid": "10021", "msgid": "7"}})
	o.Emit(Event{Type: "ignored"})
	o.Emit(pushEvent(2))
	got := map[string]bool{}
	for range 2 {
		got[nextMessage(t, msgs).Channel] = true
	}
	if !got["im_events"] || !got["chat_message_channel"] {
		t.Fatalf("published on %v", got)
	}
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := o.Stats().Sinks[0]; st.Sent != 2 || st.Retried+st.GivenUp != 0 {
		t.Errorf("stats %+v, want 2 sent (the ignored type is not stored)", st)
	}
}

func TestRedisSinkFailsWhenRedisIsDown(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	s := NewRedisSink(RedisOptions{Client: c})
	err := s.Send(context.Background(), []Event{pushEvent(1), {Type: TypeMessage}, {Type: TypeLogin}})
	var se *SendError
	if !errors.As(err, &se) || se.Failed != 2 {
		t.Fatalf("Send = %v, want a SendError with the 2 published events failed", err)
	}
	if err := NewRedisSink(RedisOptions{}).Send(context.Background(), []Event{pushEvent(1)}); err == nil {
		t.Error("Send without a Client succeeded")
	}
}

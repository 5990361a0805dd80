package events

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/redistest"
	"github.com/redis/go-redis/v9"
)

const noticeChannel = "notice_channel"

// noticeRecorder is a Handle that passes notices to the test.
type noticeRecorder struct {
	got  chan Notice
	fail string // Handle returns an error for notices with this content
}

func newNoticeRecorder() *noticeRecorder { return &noticeRecorder{got: make(chan Notice, 100)} }

func (r *noticeRecorder) handle(_ context.Context, n Notice) error {
	if r.fail != "" && n.Content == r.fail {
		return errors.New("store unavailable")
	}
	r.got <- n
	return nil
}

func (r *noticeRecorder) next(t *testing.T) Notice {
	t.Helper()
	select {
	case n := <-r.got:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no notice handled within 10 s")
		return Notice{}
	}
}

func listen(t *testing.T, o NotificationOptions) *Listener {
	t.Helper()
	if o.Channel == "" {
		o.Channel = noticeChannel
	}
	if o.Log == nil {
		o.Log = quiet()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := ListenNotifications(ctx, o)
	if err != nil {
		t.Fatalf("ListenNotifications: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Listener.Close: %v", err)
		}
	})
	return l
}

func publish(t *testing.T, c redis.UniversalClient, payload string) {
	t.Helper()
	if err := c.Publish(context.Background(), noticeChannel, payload).Err(); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func TestListenNotifications(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	c := srv.Client(t)
	rec := newNoticeRecorder()
	rec.fail = "fail me"
	var malformed atomic.Int64
	log, buf := captureLog()
	l := listen(t, NotificationOptions{Client: c, Handle: rec.handle, Log: log, OnMalformed: func() { malformed.Add(1) }})

	// Published right after ListenNotifications returned: not missed.
	publish(t, c, `{"toWho":[10021,"10022"],"needStore":true,"content":"您的订单已发货","msgtype":2,"msgid":0,"event":"order"}`)
	publish(t, c, `not json at all `+strings.Repeat("A", 1000))
	publish(t, c, `{"toWho":["a/b"],"content":"c"}`)
	publish(t, c, `{"content":"fail me"}`)
	publish(t, c, `{"content":"maintenance at 02:00","msgid":"m-1"}`)

	want := []Notice{
		{UIDs: []string{"10021", "10022"}, NeedStore: true, Content: "您的订单已发货", MsgType: 2, MsgID: "0", Event: "order"},
		{Content: "maintenance at 02:00", MsgID: `"m-1"`},
	}
	for _, w := range want {
		if got := rec.next(t); !reflect.DeepEqual(got, w) {
			t.Errorf("handled %+v, want %+v", got, w)
		}
	}
	// Handle has sent the last notice, but may not have returned yet.
	waitFor(t, 5*time.Second, "the last notice counted", func() bool { return l.Stats().Handled == 2 })
	st := l.Stats()
	if st.Received != 5 || st.Handled != 2 || st.Malformed != 2 || st.Failed != 1 || malformed.Load() != 2 {
		t.Errorf("stats %+v, OnMalformed %d; want 5 received, 2 handled, 2 malformed, 1 failed", st, malformed.Load())
	}
	logs := buf.String()
	if !strings.Contains(logs, "malformed notice") || !strings.Contains(logs, "not json at all") {
		t.Errorf("malformed notices not logged with an excerpt:\n%s", logs)
	}
	if strings.Contains(logs, strings.Repeat("A", maxExcerpt)) {
		t.Errorf("log repeats more than %d bytes of a malformed payload", maxExcerpt)
	}
	if !strings.Contains(logs, "store unavailable") {
		t.Errorf("Handle's error not logged:\n%s", logs)
	}
}

// Killing redis-server and starting it again on the same port: go-redis
// resubscribes by itself and a notice published afterwards is handled.
func TestListenNotificationsSurvivesRedisRestart(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	c := srv.Client(t)
	rec := newNoticeRecorder()
	l := listen(t, NotificationOptions{Client: c, Handle: rec.handle})

	publish(t, c, `{"content":"before"}`)
	if n := rec.next(t); n.Content != "before" {
		t.Fatalf("handled %q, want before", n.Content)
	}

	if err := srv.Restart(); err != nil {
		t.Fatalf("restart redis-server: %v", err)
	}
	// Pub/sub keeps nothing: publish only once the listener is back.
	waitFor(t, 15*time.Second, "the listener to subscribe again", func() bool {
		n, err := c.PubSubNumSub(context.Background(), noticeChannel).Result()
		return err == nil && n[noticeChannel] == 1
	})
	publish(t, c, `{"toWho":[10021],"content":"after"}`)
	if n := rec.next(t); n.Content != "after" || !reflect.DeepEqual(n.UIDs, []string{"10021"}) {
		t.Fatalf("handled %+v, want the notice published after the restart", n)
	}
	waitFor(t, 5*time.Second, "the resubscription to be counted", func() bool { return l.Stats().Resubscribed >= 1 })
}

func TestListenNotificationsErrors(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	c := srv.Client(t)
	h := func(context.Context, Notice) error { return nil }
	tests := []struct {
		name string
		o    NotificationOptions
	}{
		{"no client", NotificationOptions{Channel: "c", Handle: h}},
		{"no channel", NotificationOptions{Client: c, Handle: h}},
		{"no handle", NotificationOptions{Client: c, Channel: "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l, err := ListenNotifications(context.Background(), tt.o); err == nil {
				t.Errorf("ListenNotifications = %v, want an error", l)
			}
		})
	}

	t.Run("redis down", func(t *testing.T) {
		down := redistest.Start(t, redistest.Config{})
		dc := redis.NewClient(&redis.Options{Addr: down.Addr, DialTimeout: time.Second})
		t.Cleanup(func() {
			if err := dc.Close(); err != nil {
				t.Error(err)
			}
		})
		if err := down.Kill(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		l, err := ListenNotifications(ctx, NotificationOptions{Client: dc, Channel: "c", Handle: h, Log: quiet()})
		if err == nil {
			t.Fatalf("ListenNotifications = %v with Redis down, want an error", l)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("took %v to fail", took)
		}
	})

	t.Run("cancelled ctx", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := ListenNotifications(ctx, NotificationOptions{Client: c, Channel: "c", Handle: h}); !errors.Is(err, context.Canceled) {
			t.Errorf("ListenNotifications = %v, want context.Canceled", err)
		}
	})
}

// Close cancels the context of a Handle that is running and waits for it.
func TestListenerCloseCancelsHandle(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	c := srv.Client(t)
	started, finished := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := ListenNotifications(ctx, NotificationOptions{Client: c, Channel: noticeChannel, Log: quiet(),
		Handle: func(ctx context.Context, n Notice) error {
			close(started)
			<-ctx.Done()
			close(finished)
			return ctx.Err()
		}})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, c, `{"content":"slow"}`)
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("Handle not called")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-finished:
	default:
		t.Fatal("Close returned before Handle did")
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The subscription is gone.
	waitFor(t, 5*time.Second, "the subscription to end", func() bool {
		n, err := c.PubSubNumSub(context.Background(), noticeChannel).Result()
		return err == nil && n[noticeChannel] == 0
	})
}

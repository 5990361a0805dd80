package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// subscribeTimeout bounds the wait for the subscription confirmation
	// when the caller's ctx has no deadline.
	subscribeTimeout = 10 * time.Second
	// noticeBuffer is how many notices go-redis holds while Handle is
	// busy. Beyond that it waits a minute, then drops (and logs) them.
	noticeBuffer = 256
)

// NotificationOptions configure ListenNotifications.
type NotificationOptions struct {
	// Client subscribes; required. Owned by the caller, who closes it
	// after the Listener.
	Client redis.UniversalClient
	// Channel carries the back-end's notices; required.
	Channel string
	// Handle is called for each valid notice, one at a time, in the order
	// received, with a context cancelled by Close. An error is logged and
	// counted; the listener goes on. Required.
	Handle func(ctx context.Context, n Notice) error
	// Log gets malformed notices, Handle errors and resubscriptions;
	// slog.Default() when nil.
	Log *slog.Logger
	// OnMalformed, if set, is called for each payload ParseNotice refused,
	// from the listener's goroutine.
	OnMalformed func()
}

// Listener receives back-end notices from a Redis channel. go-redis
// pings the subscription every few seconds and, when the connection is
// lost (a Redis restart), reconnects and subscribes again by itself;
// notices published while it was not subscribed are lost, as with any
// Redis pub/sub.
type Listener struct {
	opts    NotificationOptions
	pubsub  *redis.PubSub
	msgs    <-chan any
	ctx     context.Context // given to Handle; cancelled by Close
	cancel  context.CancelFunc
	done    chan struct{} // closed when run returns
	stopped sync.Once
	err     error // of pubsub.Close, set once by Close

	received     atomic.Uint64
	handled      atomic.Uint64
	malformed    atomic.Uint64
	failed       atomic.Uint64
	resubscribed atomic.Uint64
}

// ListenNotifications subscribes to o.Channel and returns once Redis has
// confirmed the subscription, so a notice published after it returns is
// not missed. ctx bounds only that wait (10 s when it has no deadline);
// the Listener runs until Close.
func ListenNotifications(ctx context.Context, o NotificationOptions) (*Listener, error) {
	if o.Client == nil || o.Channel == "" || o.Handle == nil {
		return nil, errors.New("events: notifications need Client, Channel and Handle")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	timeout := subscribeTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("events: subscribe %s: %w", o.Channel, err)
	}
	ps := o.Client.Subscribe(ctx, o.Channel)
	if err := confirm(ctx, ps, o.Channel, timeout); err != nil {
		return nil, errors.Join(fmt.Errorf("events: subscribe %s: %w", o.Channel, err), closePubSub(ps))
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &Listener{
		opts:   o,
		pubsub: ps,
		// With subscriptions, so a resubscription after a reconnect shows.
		msgs:   ps.ChannelWithSubscriptions(redis.WithChannelSize(noticeBuffer)),
		ctx:    lctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go l.run()
	return l, nil
}

// confirm waits for the subscribe confirmation of channel.
func confirm(ctx context.Context, ps *redis.PubSub, channel string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return context.DeadlineExceeded
		}
		msg, err := ps.ReceiveTimeout(ctx, left)
		if err != nil {
			return err
		}
		if s, ok := msg.(*redis.Subscription); ok && s.Kind == "subscribe" && s.Channel == channel {
			return nil
		}
	}
}

// closePubSub closes ps; closing one already closed is not an error.
func closePubSub(ps *redis.PubSub) error {
	if err := ps.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("events: close subscription: %w", err)
	}
	return nil
}

// run handles what the subscription delivers until Close.
func (l *Listener) run() {
	defer close(l.done)
	for {
		select {
		case <-l.ctx.Done():
			return
		case m, ok := <-l.msgs:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *redis.Subscription:
				// The first confirmation was read by ListenNotifications;
				// any other follows a reconnect.
				if m.Kind == "subscribe" && m.Channel == l.opts.Channel {
					l.resubscribed.Add(1)
					l.opts.Log.Warn("events: notifications subscribed again after a lost connection; notices published meanwhile were missed",
						"channel", l.opts.Channel)
				}
			case *redis.Message:
				l.handle([]byte(m.Payload))
			}
		}
	}
}

func (l *Listener) handle(payload []byte) {
	l.received.Add(1)
	n, err := ParseNotice(payload)
	if err != nil {
		l.malformed.Add(1)
		l.opts.Log.Warn("events: malformed notice ignored", "channel", l.opts.Channel,
			"error", err, "bytes", len(payload), "excerpt", excerpt(payload))
		if l.opts.OnMalformed != nil {
			l.opts.OnMalformed()
		}
		return
	}
	if err := l.opts.Handle(l.ctx, n); err != nil {
		l.failed.Add(1)
		l.opts.Log.Warn("events: notice not handled", "channel", l.opts.Channel,
			"uids", len(n.UIDs), "msgtype", n.MsgType, "error", err)
		return
	}
	l.handled.Add(1)
}

// Close stops the listener: it cancels Handle's context, waits for a
// running Handle to return, and closes the subscription (not the Client).
// Later calls return the first call's result.
func (l *Listener) Close() error {
	l.stopped.Do(func() {
		l.cancel()
		<-l.done
		l.err = closePubSub(l.pubsub)
		// go-redis's reader may be blocked handing over a message; once
		// it sees the subscription closed it closes msgs.
		for range l.msgs {
		}
	})
	return l.err
}

// ListenerStats count a Listener's notices since it started.
type ListenerStats struct {
	Received     uint64 // payloads received
	Handled      uint64 // valid notices Handle accepted
	Malformed    uint64 // payloads ParseNotice refused
	Failed       uint64 // valid notices Handle returned an error for
	Resubscribed uint64 // subscriptions re-established after a lost connection
}

// Stats returns the counters. It is safe for concurrent use.
func (l *Listener) Stats() ListenerStats {
	return ListenerStats{
		Received:     l.received.Load(),
		Handled:      l.handled.Load(),
		Malformed:    l.malformed.Load(),
		Failed:       l.failed.Load(),
		Resubscribed: l.resubscribed.Load(),
	}
}

package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Local is what a node does when another node signals it; the delivery
// hook implements it.
type Local interface {
	// WakeLocal makes this node's connections of uid read their inbox
	// (every connection reads the broadcast log for inbox.BroadcastInbox).
	WakeLocal(uid string)
	// WakeAll makes every local connection read its inbox (after a gap in
	// the signal stream, when wakes may have been missed).
	WakeAll()
	// LogoutOlder logs out this node's connections of uid that logged in
	// before at (single login across nodes).
	LogoutOlder(uid string, at time.Time, reason string)
	// KickLocal logs out every connection of uid on this node.
	KickLocal(uid, reason string)
}

// Options configure a Node.
type Options struct {
	Client redis.UniversalClient // shared with the Redis store
	Prefix string                // the store's key prefix
	NodeID int
	Local  Local
	Log    *slog.Logger
}

// Node sends and receives the signals of one inboxmq node.
type Node struct {
	opts    Options
	channel string
	pubsub  *redis.PubSub
	done    chan struct{}
	wg      sync.WaitGroup
	closing sync.Once
	closed  error
}

type signal struct {
	Kind   string   `json:"k"` // wake, login, kick
	Node   int      `json:"n"` // sender
	UIDs   []string `json:"u,omitempty"`
	At     int64    `json:"t,omitempty"` // login time, Unix ns
	Reason string   `json:"r,omitempty"`
}

// Join subscribes the node to the signal channel and returns once the
// subscription is active, so no signal sent after Join is missed.
func Join(ctx context.Context, opts Options) (*Node, error) {
	if opts.Client == nil || opts.Local == nil {
		return nil, errors.New("cluster: Client and Local are required")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	n := &Node{opts: opts, channel: opts.Prefix + "{signals}", done: make(chan struct{})}
	n.pubsub = opts.Client.Subscribe(ctx, n.channel)
	if _, err := n.pubsub.Receive(ctx); err != nil { // the subscribe confirmation
		n.pubsub.Close()
		return nil, fmt.Errorf("cluster: subscribe %s: %w", n.channel, err)
	}
	n.wg.Add(1)
	go n.listen()
	return n, nil
}

// listen handles signals until Close. go-redis re-subscribes by itself
// after a connection loss; the confirmation it then receives tells us
// wakes may have been missed in between.
func (n *Node) listen() {
	defer n.wg.Done()
	for {
		msg, err := n.pubsub.Receive(context.Background())
		if err != nil {
			select {
			case <-n.done:
				return
			default:
			}
			n.opts.Log.Warn("cluster signals interrupted; retrying", "error", err)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				n.opts.Log.Info("cluster signals re-established; waking every local connection")
				n.opts.Local.WakeAll()
			}
		case *redis.Message:
			n.handle([]byte(m.Payload))
		}
	}
}

func (n *Node) handle(raw []byte) {
	var s signal
	if err := json.Unmarshal(raw, &s); err != nil {
		n.opts.Log.Warn("cluster signal unreadable", "error", err)
		return
	}
	if s.Node == n.opts.NodeID {
		return // ours: already done locally
	}
	switch s.Kind {
	case "wake":
		for _, uid := range s.UIDs {
			n.opts.Local.WakeLocal(uid)
		}
	case "login":
		for _, uid := range s.UIDs {
			n.opts.Local.LogoutOlder(uid, time.Unix(0, s.At), "logged in elsewhere")
		}
	case "kick":
		for _, uid := range s.UIDs {
			n.opts.Local.KickLocal(uid, s.Reason)
		}
	default:
		// A newer node's signal, or garbage: nothing to do, but say so.
		n.opts.Log.Warn("cluster signal of unknown kind ignored", "kind", s.Kind, "node", s.Node)
	}
}

func (n *Node) send(ctx context.Context, s signal) error {
	s.Node = n.opts.NodeID
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := n.opts.Client.Publish(ctx, n.channel, raw).Err(); err != nil {
		return fmt.Errorf("cluster: publish %s: %w", s.Kind, err)
	}
	return nil
}

// Wake tells the other nodes that the inboxes of uids grew.
func (n *Node) Wake(ctx context.Context, uids []string) error {
	return n.send(ctx, signal{Kind: "wake", UIDs: uids})
}

// LoggedIn tells the other nodes that uid logged in at at.
func (n *Node) LoggedIn(ctx context.Context, uid string, at time.Time) error {
	return n.send(ctx, signal{Kind: "login", UIDs: []string{uid}, At: at.UnixNano()})
}

// Kick has the other nodes log uid out.
func (n *Node) Kick(ctx context.Context, uid, reason string) error {
	return n.send(ctx, signal{Kind: "kick", UIDs: []string{uid}, Reason: reason})
}

// Close leaves the cluster. It may be called more than once.
func (n *Node) Close() error {
	n.closing.Do(func() {
		close(n.done)
		n.closed = n.pubsub.Close()
		n.wg.Wait()
	})
	return n.closed
}

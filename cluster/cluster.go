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
	// EphemeralLocal writes an envelope that is not stored (Typing) to
	// this node's connections of uid, at QoS 0.
	EphemeralLocal(uid string, envelope []byte)
}

// Options configure a Node.
type Options struct {
	Client redis.UniversalClient // shared with the Redis store
	Prefix string                // the store's key prefix
	NodeID int
	Local  Local
	Log    *slog.Logger
	// Online, if set, counts this node's connections of a uid: the node
	// keeps the counts in Redis (see presence.go) for OnlineEverywhere.
	Online func(uid string) int
	// Beat is how often the node renews its presence (default 5s); it
	// counts as gone three beats after its last one.
	Beat time.Duration
}

// Node sends and receives the signals of one inboxmq node.
type Node struct {
	opts    Options
	channel string
	pubsub  *redis.PubSub
	peers   *presence
	done    chan struct{}
	wg      sync.WaitGroup
	closing sync.Once
	closed  error
}

type signal struct {
	Kind   string   `json:"k"` // wake, login, kick, ephemeral
	Node   int      `json:"n"` // sender
	UIDs   []string `json:"u,omitempty"`
	At     int64    `json:"t,omitempty"` // login time, Unix ns
	Reason string   `json:"r,omitempty"`
	// Envelope is an ephemeral signal's JSON envelope, as a string: the
	// broker's envelopes are valid UTF-8, and a string keeps the signal
	// readable whatever the envelope holds.
	Envelope string `json:"e,omitempty"`
	// Entries are a wake's just-stored inbox entries per uid (WakeWith),
	// opaque here: nodes without an Offerer, and older nodes, read the log.
	Entries map[string][]json.RawMessage `json:"m,omitempty"`
}

// Offerer is a Local that can take a wake's entries (Node.WakeWith)
// instead of reading the log for them.
type Offerer interface {
	OfferLocal(uid string, entries []json.RawMessage)
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
	n.peers = newPresence(n)
	if err := n.peers.start(ctx); err != nil {
		n.pubsub.Close()
		return nil, err
	}
	n.wg.Add(1)
	go n.peers.run()
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
		offerer, canOffer := n.opts.Local.(Offerer)
		for _, uid := range s.UIDs {
			if entries := s.Entries[uid]; canOffer && len(entries) > 0 {
				offerer.OfferLocal(uid, entries)
			} else {
				n.opts.Local.WakeLocal(uid)
			}
		}
	case "login":
		for _, uid := range s.UIDs {
			n.opts.Local.LogoutOlder(uid, time.Unix(0, s.At), "logged in elsewhere")
		}
	case "kick":
		for _, uid := range s.UIDs {
			n.opts.Local.KickLocal(uid, s.Reason)
		}

	case "ephemeral":
		for _, uid := range s.UIDs {
			n.opts.Local.EphemeralLocal(uid, []byte(s.Envelope))
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

// WakeWith is Wake with the entries just appended to some of the inboxes:
// entries maps a uid to them, each an encoded message its Local's
// OfferLocal understands. A signal carries at most what the caller put in;
// the caller bounds it (every node receives every signal).
func (n *Node) WakeWith(ctx context.Context, uids []string, entries map[string][]json.RawMessage) error {
	return n.send(ctx, signal{Kind: "wake", UIDs: uids, Entries: entries})
}

// LoggedIn tells the other nodes that uid logged in at at.
func (n *Node) LoggedIn(ctx context.Context, uid string, at time.Time) error {
	return n.send(ctx, signal{Kind: "login", UIDs: []string{uid}, At: at.UnixNano()})
}

// Kick has the other nodes log uid out.
func (n *Node) Kick(ctx context.Context, uid, reason string) error {
	return n.send(ctx, signal{Kind: "kick", UIDs: []string{uid}, Reason: reason})
}

// Ephemeral has the other nodes write envelope, which is not stored, to
// their connections of uid. Like every signal it is best effort: a node
// that misses it (a Redis failover) just does not show it.
func (n *Node) Ephemeral(ctx context.Context, uid string, envelope []byte) error {
	return n.send(ctx, signal{Kind: "ephemeral", UIDs: []string{uid}, Envelope: string(envelope)})
}

// Close leaves the cluster. It may be called more than once.
func (n *Node) Close() error {
	n.closing.Do(func() {
		close(n.done)
		n.closed = n.pubsub.Close()
		n.wg.Wait()
		n.peers.stop()
	})
	return n.closed
}

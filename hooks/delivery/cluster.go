package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
)

// Router carries signals to the other nodes sharing the store (package
// cluster implements it over Redis). A single node has none.
type Router interface {
	Wake(ctx context.Context, uids []string) error // inbox.BroadcastInbox among them for the broadcast log
	LoggedIn(ctx context.Context, uid string, at time.Time) error
	Kick(ctx context.Context, uid, reason string) error
	Ephemeral(ctx context.Context, uid string, envelope []byte) error
}

// SetRouter connects the hook to the other nodes. Call it before the
// server serves clients.
func (h *Hook) SetRouter(r Router) {
	h.router.Store(&routerBox{r: r})
	h.wakes = newWakeBatcher(r, h.opts.Log.Warn)
}

type routerBox struct{ r Router }

func (h *Hook) routerOrNil() Router {
	if b := h.router.Load(); b != nil {
		return b.r
	}
	return nil
}

// The Local side, called by the router for other nodes' signals.

// WakeLocal makes this node's connections of uid read their inbox; for
// inbox.BroadcastInbox, the broadcast log grew on another node.
func (h *Hook) WakeLocal(uid string) {
	if uid == inbox.BroadcastInbox {
		h.wakeBroadcast()
		return
	}
	for _, c := range h.online(uid) {
		c.wakeRead(laneInbox)
	}
}

// WakeAll makes every local connection read its inbox and the broadcast log.
func (h *Hook) WakeAll() {
	h.conns.Range(func(_, v any) bool {
		c := v.(*conn)
		c.wakeRead(laneInbox)
		c.wakeRead(laneBroadcast)
		return true
	})
}

// LogoutOlder logs out this node's connections of uid that logged in
// before at: a newer login elsewhere wins (single login across nodes).
func (h *Hook) LogoutOlder(uid string, at time.Time, reason string) {
	for _, c := range h.online(uid) {
		if c.loginAt.Before(at) {
			h.unregister(c.cl)
			h.kick(c, reason)
		}
	}
}

// KickLocal logs out every connection of uid on this node.
func (h *Hook) KickLocal(uid, reason string) { h.kickLocal(uid, reason) }

// EphemeralLocal writes envelope, which is not stored, to this node's
// connections of uid that are subscribed to their inbox, at QoS 0.
func (h *Hook) EphemeralLocal(uid string, envelope []byte) {
	for _, c := range h.online(uid) {
		c.writeTransient(envelope)
	}
}

// Ephemeral writes envelope, which is not stored (Typing), to uid's
// connections on this node and has the other nodes do the same. Unlike
// the messaging.Delivery methods it waits for the signal to be sent to
// the other nodes, up to ctx: the caller is the request it answers.
func (h *Hook) Ephemeral(ctx context.Context, uid string, envelope []byte) error {
	h.EphemeralLocal(uid, envelope)
	if r := h.routerOrNil(); r != nil {
		if err := r.Ephemeral(ctx, uid, envelope); err != nil {
			return fmt.Errorf("ephemeral signal to other nodes: %w", err)
		}
	}
	return nil
}

// broadcastFeed is where this node stands in the broadcast log: the
// highest Seq it has offered to its connections.
type broadcastFeed struct {
	mu    sync.Mutex
	seen  uint64 // guarded by mu
	known bool   // seen is the log's end or later (not just what was offered)
}

// offerBroadcasts hands just-appended broadcasts (in Seq order) to every
// connection: each delivers the log from its own cursor, like an inbox, so
// offline devices get what they missed at their next connection and a slow
// one holds at most a window in flight.
func (h *Hook) offerBroadcasts(msgs []inbox.Message) {
	h.bcast.mu.Lock()
	h.bcast.seen = max(h.bcast.seen, msgs[len(msgs)-1].Seq)
	h.bcast.mu.Unlock()
	h.conns.Range(func(_, v any) bool {
		c := v.(*conn)
		for _, m := range msgs {
			c.offer(laneBroadcast, m)
		}
		c.wake()
		return true
	})
}

// wakeBroadcast handles another node's broadcast: this node reads what is
// new in the log once and offers it to its connections, instead of each
// subscribed connection reading it (one store read per subscriber per
// broadcast). When that is not possible (position unknown, a read error,
// more than a tail's worth) every connection reads for itself.
func (h *Hook) wakeBroadcast() {
	h.bcast.mu.Lock()
	from, known := h.bcast.seen+1, h.bcast.known
	h.bcast.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if known {
		msgs, err := h.opts.Store.Read(ctx, inbox.BroadcastInbox, from, tailMax)
		switch {
		case err != nil:
			h.opts.Log.Warn("broadcast log read failed; every connection reads it", "error", err)
		case len(msgs) < tailMax:
			if len(msgs) > 0 {
				h.offerBroadcasts(msgs)
			}
			return
		}
	}
	h.learnBroadcastEnd(ctx)
	h.conns.Range(func(_, v any) bool {
		v.(*conn).wakeRead(laneBroadcast)
		return true
	})
}

// logEnd returns the highest Seq known in log. For the broadcast log that
// is where this node stands (no store call per connection: in a reconnect
// storm every connection subscribes to broadcast). It may trail the store
// by a broadcast whose wake signal is on its way; that signal's
// wakeBroadcast then offers it, as to every other connection.
func (h *Hook) logEnd(ctx context.Context, log string) (uint64, error) {
	if log == inbox.BroadcastInbox {
		h.bcast.mu.Lock()
		seen, known := h.bcast.seen, h.bcast.known
		h.bcast.mu.Unlock()
		if known {
			return seen, nil
		}
	}
	_, last, err := h.opts.Store.Bounds(ctx, log)
	return last, err
}

// learnBroadcastEnd sets where this node stands to the broadcast log's end,
// if the store answers: connections read what came before for themselves.
func (h *Hook) learnBroadcastEnd(ctx context.Context) {
	_, last, err := h.opts.Store.Bounds(ctx, inbox.BroadcastInbox)
	if err != nil {
		return
	}
	h.bcast.mu.Lock()
	h.bcast.seen, h.bcast.known = max(h.bcast.seen, last), true
	h.bcast.mu.Unlock()
}

// wakeBatcher sends wake signals off the publisher's path, coalescing the
// uids of many appends into one signal: under load, wakes cost well under
// one Redis round trip per message, and a sender's PUBACK never waits for
// them (the message is already stored; the wake only makes it live).
//
// When the router can (EntryRouter), a wake carries the entries just
// stored, up to maxWakeBytes per signal, so the other nodes offer them to
// their connections as this node does (Hook.OfferLocal) instead of each
// reading the log back: a round trip per message saved. What does not fit
// goes as a plain wake, and the other node reads the log.
type wakeBatcher struct {
	r    Router
	warn func(string, ...any)

	mu      sync.Mutex
	pending map[string]*pendingWake // guarded by mu
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// pendingWake is what a wake of one uid will carry.
type pendingWake struct {
	entries []inbox.Message
	plain   bool // the log must be read: an entry did not fit, or none was given
}

// EntryRouter is a Router whose wakes can carry the entries stored
// (cluster.Node): entries maps a uid to its entries, JSON-encoded
// inbox.Messages in Seq order; the uids without any get a plain wake.
type EntryRouter interface {
	WakeWith(ctx context.Context, uids []string, entries map[string][]json.RawMessage) error
}

// maxWakeBytes bounds the entries one wake signal carries: every node
// receives every signal, so big messages go by the log instead.
const maxWakeBytes = 64 << 10

func newWakeBatcher(r Router, warn func(string, ...any)) *wakeBatcher {
	w := &wakeBatcher{r: r, warn: warn, pending: make(map[string]*pendingWake), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// close sends what is pending and ends the batcher; it may be called more
// than once.
func (w *wakeBatcher) close() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// add wakes uids: their nodes read the log.
func (w *wakeBatcher) add(uids ...string) {
	w.mu.Lock()
	for _, u := range uids {
		w.pendingLocked(u).plain = true
	}
	w.mu.Unlock()
	w.poke()
}

// addEntries wakes uid with the entries just appended to its inbox.
func (w *wakeBatcher) addEntries(uid string, entries []inbox.Message) {
	w.mu.Lock()
	if p := w.pendingLocked(uid); !p.plain {
		p.entries = append(p.entries, entries...)
	}
	w.mu.Unlock()
	w.poke()
}

func (w *wakeBatcher) pendingLocked(uid string) *pendingWake {
	p := w.pending[uid]
	if p == nil {
		p = &pendingWake{}
		w.pending[uid] = p
	}
	return p
}

func (w *wakeBatcher) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *wakeBatcher) run() {
	defer close(w.done)
	for {
		select {
		case <-w.kick:
			w.send()
		case <-w.stop:
			w.send()
			return
		}
	}
}

// send sends the pending wakes, 500 uids per signal.
func (w *wakeBatcher) send() {
	w.mu.Lock()
	pending := w.pending
	w.pending = make(map[string]*pendingWake, len(pending))
	w.mu.Unlock()
	uids := make([]string, 0, len(pending))
	for u := range pending {
		uids = append(uids, u)
	}
	er, withEntries := w.r.(EntryRouter)
	for len(uids) > 0 {
		n := min(len(uids), 500)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var err error
		if withEntries {
			err = er.WakeWith(ctx, uids[:n], encodeWakeEntries(uids[:n], pending))
		} else {
			err = w.r.Wake(ctx, uids[:n])
		}
		cancel()
		if err != nil {
			// The messages are stored; the peers' nodes pick them up
			// when they next wake those inboxes (reconnect, next
			// message, or re-subscription after a Redis outage).
			w.warn("wake signal not sent", "uids", n, "error", err)
		}
		uids = uids[n:]
	}
}

// encodeWakeEntries encodes the entries of uids that fit in maxWakeBytes.
func encodeWakeEntries(uids []string, pending map[string]*pendingWake) map[string][]json.RawMessage {
	var out map[string][]json.RawMessage
	size := 0
	for _, u := range uids {
		p := pending[u]
		if p.plain || len(p.entries) == 0 {
			continue
		}
		raw := make([]json.RawMessage, 0, len(p.entries))
		n := 0
		for i := range p.entries {
			b, err := json.Marshal(&p.entries[i])
			if err != nil {
				raw = nil
				break
			}
			raw = append(raw, b)
			n += len(b)
		}
		if raw == nil || size+n > maxWakeBytes {
			continue // a plain wake: its node reads the log
		}
		if out == nil {
			out = make(map[string][]json.RawMessage)
		}
		out[u] = raw
		size += n
	}
	return out
}

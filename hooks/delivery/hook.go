package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/events"
	"github.com/inboxmq/inboxmq/hooks/access"
	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/internal/keyrate"
	"github.com/inboxmq/inboxmq/internal/shallow"
	"github.com/inboxmq/inboxmq/messaging"
)

// InboxPrefix starts every inbox topic: inbox/{uid}.
const InboxPrefix = "inbox/"

// BroadcastTopic carries notices to everyone.
const BroadcastTopic = "broadcast"

// DefaultWindow is how many inbox messages may wait for a PUBACK per connection.
const DefaultWindow = 64

// A connection may log refusal lines at this rate after a burst; the rest
// are counted in the next line it logs (suppressed_before).
const (
	refusalLinesPerSecond = 1
	refusalLineBurst      = 10
)

// Identities tells who a client is (package access implements it).
type Identities interface {
	Identity(cl *mqtt.Client) (*access.Identity, bool)
}

// Options configure the hook.
type Options struct {
	Server     *mqtt.Server // required; its inline client must be enabled for broadcasts
	Store      inbox.Store  // required: the inbox log
	Identities Identities   // required
	Policy     *acl.Policy  // required: decides publishes
	// SingleLogin makes a user's new connection log out its older ones, and
	// gives all of a user's connections one delivery cursor (legacy behaviour).
	SingleLogin bool
	// Window is the number of unacknowledged inbox messages per connection.
	Window int
	Limits bridge.Limits
	// MessageRate and MessageBurst bound each user account's publishes per
	// second (admin and service accounts are exempt); 0 means no limit.
	// A publish over the rate waits up to MessageWait for its token, which
	// pauses the connection's reads; beyond that it is refused.
	MessageRate  float64
	MessageBurst int
	MessageWait  time.Duration
	Log          *slog.Logger
	// Events, if set, is told what happens (metrics). It must not block.
	Events Events
	// Service performs the requests (required); the hook is its delivery
	// side (Attach).
	Service *messaging.Service
	// Emitter, if set, receives the login and logout events.
	Emitter messaging.Emitter
	// TokenLeeway is how long past its token's expiry a connection may
	// last (the clock skew tokens are verified with).
	TokenLeeway time.Duration
	// WriteTimeout bounds a write to a connection (DefaultWriteTimeout when
	// 0): a client that stops reading is disconnected after it.
	WriteTimeout time.Duration
	// RequestTimeout bounds the store work of one MQTT request
	// (DefaultRequestTimeout when 0): its sender learns the outcome within it.
	RequestTimeout time.Duration
}

// DefaultRequestTimeout is Options.RequestTimeout when 0.
const DefaultRequestTimeout = 5 * time.Second

// DefaultWriteTimeout is Options.WriteTimeout when 0.
const DefaultWriteTimeout = 10 * time.Second

// Events receives what happens, for metrics. Every method must be cheap
// and must not block: they run on client and delivery goroutines.
type Events interface {
	// Delivered: one inbox message written to a connection, age after it was stored.
	Delivered(kind inbox.Kind, age time.Duration)
	// Acked: a connection acknowledged n more inbox messages.
	Acked(n int)
	// Backlog: a connection started delivery with n messages waiting for it.
	Backlog(n uint64)
	// Rejected: a request refused with this Error code.
	Rejected(code string)
	// Kicked: a connection logged out by a newer login or an admin.
	Kicked()
}

// Hook delivers inboxes and handles client requests.
type Hook struct {
	mqtt.HookBase
	opts Options

	conns       sync.Map     // *mqtt.Client -> *conn
	swaps       sync.Map     // *mqtt.Client -> idSwap, see packetids.go
	qos2Refused sync.Map     // qos2Key -> struct{}: refused QoS 2 publishes, see fixAck
	qos2Waiting atomic.Int64 // entries in qos2Refused

	// The client's Receive Maximum, see flow.go.
	receiveMax sync.Map     // *mqtt.Client -> int, from CONNECT until the session is established
	flows      sync.Map     // *mqtt.Client -> *flow
	stashes    sync.Map     // *mqtt.Client -> []packets.Packet, an old connection's unacknowledged publishes
	swept      atomic.Int64 // UnixNano of the last sweepUnestablished

	// logins holds when each CONNECT was accepted (OnSessionEstablish,
	// before its CONNACK) until the session is established: single-login
	// keeps the newest login by this order, not by the order in which
	// OnSessionEstablished happens to run for two logins a moment apart.
	logins   sync.Map // *mqtt.Client -> login
	loginSeq atomic.Uint64

	mu    sync.Mutex
	byUID map[string][]*conn // online connections of each uid; guarded by mu

	pumps   sync.WaitGroup             // running pump goroutines
	shallow shallow.Pool               // workers for store reads at subscribe time
	deps    *connDeps                  // what connections use of the hook
	rates   atomic.Pointer[rateLimits] // nil when unlimited; replaced on reload
	leeway  atomic.Int64               // token leeway (a time.Duration); replaced on reload
	router  atomic.Pointer[routerBox]  // other nodes; nil on a single node
	wakes   *wakeBatcher               // set with the router, before serving
	// refusals bounds "request refused" lines per connection: a client
	// sending garbage in a loop must not fill the disk.
	refusals *keyrate.Limiter
	bcast    broadcastFeed // what this node has offered of the broadcast log
}

// SetMessageRate changes the per-account publish rate (0: unlimited) and
// how long a publish may wait for its turn.
func (h *Hook) SetMessageRate(perSecond float64, burst int, maxWait time.Duration) {
	h.rates.Store(newRateLimits(perSecond, burst, maxWait))
}

// SetTokenLeeway changes how long past its token's expiry a connection
// that logs in from now on may stay.
func (h *Hook) SetTokenLeeway(d time.Duration) { h.leeway.Store(int64(d)) }

// Wait blocks until every delivery goroutine has ended. Call it after the
// server has closed, before closing the store; it may be called again.
func (h *Hook) Wait() {
	if h.deps != nil {
		h.deps.acks.hurry()
	}
	h.pumps.Wait()
}

// Close waits for the delivery goroutines (Wait) and stops the wake
// signals to other nodes, sending those still pending. Call it after the
// server has closed and before the router and the store close; it may be
// called more than once.
func (h *Hook) Close() {
	h.Wait()
	h.shallow.Close()
	if h.wakes != nil {
		h.wakes.close()
	}
}

// ID names the hook.
func (h *Hook) ID() string { return "inboxmq-delivery" }

// Provides lists the events the hook handles.
func (h *Hook) Provides(b byte) bool {
	// A switch, not bytes.Contains: mochi asks every hook this for every
	// event of every packet, and that showed in fan-out profiles.
	switch b {
	case mqtt.OnPacketRead,
		mqtt.OnPacketEncode,
		mqtt.OnPacketProcessed,
		mqtt.OnPacketSent,
		mqtt.OnQosPublish,
		mqtt.OnPublish,
		mqtt.OnSessionEstablish,
		mqtt.OnSessionEstablished,
		mqtt.OnSubscribed,
		mqtt.OnUnsubscribed,
		mqtt.OnDisconnect:
		return true
	}
	return false
}

// Init takes *Options.
func (h *Hook) Init(config any) error {
	opts, ok := config.(*Options)
	if !ok || opts == nil {
		return fmt.Errorf("delivery: Init needs *delivery.Options, got %T", config)
	}
	if opts.Server == nil || opts.Store == nil || opts.Identities == nil || opts.Policy == nil || opts.Service == nil {
		return errors.New("delivery: Server, Store, Identities, Policy and Service are required")
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Events == nil {
		opts.Events = noEvents{}
	}
	h.opts = *opts
	h.byUID = make(map[string][]*conn)
	h.deps = newConnDeps(h)
	// Where the broadcast log stands, so another node's broadcast costs one
	// read here (wakeBroadcast). Best effort: unknown, the first one costs
	// a read per subscriber.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	h.learnBroadcastEnd(ctx)
	cancel()
	h.refusals = keyrate.NewLimiter(refusalLinesPerSecond, refusalLineBurst)
	h.SetMessageRate(opts.MessageRate, opts.MessageBurst, opts.MessageWait)
	h.SetTokenLeeway(opts.TokenLeeway)
	return nil
}

func (h *Hook) conn(cl *mqtt.Client) *conn {
	v, ok := h.conns.Load(cl)
	if !ok {
		return nil
	}
	return v.(*conn)
}

// OnSessionEstablish runs before mochi hands an existing session with the
// same id to the new connection: stop the old connection's deliveries and
// take its inbox packets out of the inflight map mochi is about to copy, so
// the new connection gets them from the log, in order, exactly once.
func (h *Hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	h.logins.Store(cl, h.newLogin())
	if old, ok := h.opts.Server.Clients.Get(cl.ID); ok && old != cl {
		h.BeforeTakeover(old)
	}
	h.startFlow(cl)
}

// BeforeTakeover ends an old connection that a new login with the same
// account and client id replaces: in single-login mode the old device is
// told Logout first (as when the new login uses another client id), and
// its deliveries stop so the new connection resumes from the log. The
// access hook calls it before mochi's takeover disconnects the old one.
func (h *Hook) BeforeTakeover(old *mqtt.Client) {
	c := h.conn(old)
	if c == nil || c.isClosed() {
		return // already ended (both hooks call this for one takeover)
	}
	if h.opts.SingleLogin && c.id.Role == acl.RoleUser {
		c.writeTransient(bridge.Logout("logged in elsewhere"))
		h.opts.Events.Kicked()
	}
	c.close()
}

// OnSessionEstablished registers the connection, logs out older connections
// of the same user in single-login mode, and resumes inbox delivery when the
// restored session is already subscribed to its inbox.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if f := h.flowOf(cl); f != nil {
		h.restoreStash(cl, f)
	}
	lg, ok := h.logins.LoadAndDelete(cl)
	if !ok {
		lg = h.newLogin() // a session restored at start: no CONNECT
	}
	id, ok := h.opts.Identities.Identity(cl)
	if !ok || id.Role == acl.RoleAnonymous {
		return
	}
	c := newConn(h, cl, id, lg.(login))
	kick := h.register(c)
	for _, old := range kick {
		h.kick(old, "logged in elsewhere")
	}
	if slices.Contains(kick, c) {
		return // a newer login of the user was established first
	}
	if r := h.routerOrNil(); r != nil && h.opts.SingleLogin && id.Role == acl.RoleUser {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := r.LoggedIn(ctx, id.UID, c.loginAt); err != nil {
				h.opts.Log.Warn("login not announced to other nodes", "uid", id.UID, "error", err)
			}
		}()
	}
	c.endAtExpiry()
	h.emitPresence(events.TypeLogin, c, "")
	h.opts.Log.Info("connected", "uid", id.UID, "client", id.ClientID, "remote", cl.Net.Remote,
		"role", string(id.Role), "protocol", cl.Properties.ProtocolVersion, "clean", cl.Properties.Clean)
	for i := range c.lanes {
		if sub, ok := cl.State.Subscriptions.Get(c.lanes[i].topic); ok { // topic never changes: no lock
			c.subscribe(i, sub.Qos)
		}
	}
}

// login is when a connection's CONNECT was accepted: seq orders the
// logins of this node, at the time cluster peers compare.
type login struct {
	at  time.Time
	seq uint64
}

func (h *Hook) newLogin() login {
	return login{at: time.Now(), seq: h.loginSeq.Add(1)}
}

// register adds c and returns the connections single-login must end: all
// but the newest login of the user, which is c itself only when no later
// CONNECT of the user was established before it.
func (h *Hook) register(c *conn) (kick []*conn) {
	h.conns.Store(c.cl, c)
	h.mu.Lock()
	defer h.mu.Unlock()
	list := append(h.byUID[c.id.UID], c)
	if h.opts.SingleLogin && c.id.Role == acl.RoleUser {
		newest := c
		for _, x := range list {
			if x.loginSeq > newest.loginSeq {
				newest = x
			}
		}
		for _, x := range list {
			if x != newest {
				kick = append(kick, x)
			}
		}
		list = []*conn{newest}
	}
	h.byUID[c.id.UID] = list
	h.onlineChanged(c.id.UID)
	return kick
}

// onlineChanged tells the other nodes' presence counts (cluster.Node)
// that uid's connections on this node changed. h.mu may be held: the
// router only notes the uid.
func (h *Hook) onlineChanged(uid string) {
	if p, ok := h.routerOrNil().(interface{ OnlineChanged(uid string) }); ok {
		p.OnlineChanged(uid)
	}
}

func (h *Hook) unregister(cl *mqtt.Client) *conn {
	v, ok := h.conns.LoadAndDelete(cl)
	if !ok {
		return nil
	}
	c := v.(*conn)
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.byUID[c.id.UID]
	for i, x := range list {
		if x == c {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(h.byUID, c.id.UID)
	} else {
		h.byUID[c.id.UID] = list
	}
	h.onlineChanged(c.id.UID)
	return c
}

// kick ends an older connection of a user: no more deliveries (its cursor
// is final once close returns), a Logout envelope, then DISCONNECT 0x8E
// (MQTT 5) or a closed socket (3.1.1).
func (h *Hook) kick(c *conn, reason string) {
	h.conns.Delete(c.cl)
	c.close()
	h.opts.Events.Kicked()
	h.opts.Log.Info("logged out", "uid", c.id.UID, "client", c.id.ClientID, "remote", c.cl.Net.Remote, "reason", reason)
	// The socket write may block on a stalled client: not on the new
	// connection's goroutine, and not for longer than a moment, so a kick
	// of a client that stopped reading closes its socket at once.
	go func() {
		said := make(chan struct{})
		go func() {
			defer close(said)
			c.writeTransient(bridge.Logout(reason))
			access.EndConnection(h.opts.Server, c.cl, packets.ErrSessionTakenOver)
		}()
		select {
		case <-said:
		case <-time.After(kickWriteTimeout):
		}
		// Closing the socket also ends a write still blocked on it.
		c.cl.Stop(packets.ErrSessionTakenOver)
	}()
}

// kickWriteTimeout bounds the Logout and DISCONNECT writes of a kick.
const kickWriteTimeout = time.Second

// online returns the connections of uid.
func (h *Hook) online(uid string) []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.byUID[uid]
	if len(list) == 0 {
		return nil
	}
	return append([]*conn(nil), list...)
}

// OnlineUsers reports how many users have a connection on this node.
func (h *Hook) OnlineUsers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byUID)
}

// Online reports how many connections uid has on this node.
func (h *Hook) Online(uid string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byUID[uid])
}

// OnSubscribed starts delivery of a log when a client subscribes to its
// topic: its inbox, or broadcast. It also puts right the retained messages
// mochi sends next (identifyRetained).
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	identifyRetained(pk)
	c := h.conn(cl)
	if c == nil {
		return
	}
	for i, f := range pk.Filters {
		if lane := c.laneOf(f.Filter); lane >= 0 && i < len(reasonCodes) && reasonCodes[i] <= 1 {
			c.subscribe(lane, reasonCodes[i])
		}
	}
}

// OnUnsubscribed stops delivery of a log when a client unsubscribes from its topic.
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	c := h.conn(cl)
	if c == nil {
		return
	}
	for _, f := range pk.Filters {
		if lane := c.laneOf(f.Filter); lane >= 0 {
			c.unsubscribe(lane)
		}
	}
}

// OnPacketRead sees every PUBACK a client sends; those for inbox packets
// move the delivery cursor. (OnQosComplete cannot be used: mochi also fires
// it for its own acks of the client's publishes, whose packet ids live in
// another id space.)
func (h *Hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Connect:
		if err := h.refuseEmptyPersistentID(cl, pk); err != nil {
			return pk, err
		}
		h.hideReceiveMaximum(cl, &pk)
		carryWillProperties(&pk)
	case packets.Auth:
		return pk, h.refuseAuth(cl)
	case packets.Puback:
		if c := h.conn(cl); c != nil && c.ack(pk.PacketID) {
			pk.PacketID = 0 // mochi has nothing under 0: the reservation stays
		} else if f := h.flowOf(cl); f != nil {
			h.flowAck(cl, f, &pk)
		}
	case packets.Pubcomp, packets.Pubrec:
		if f := h.flowOf(cl); f != nil {
			h.flowAck(cl, f, &pk)
		}
	case packets.Subscribe, packets.Unsubscribe:
		if err := h.throttle(cl); err != nil {
			return pk, err
		}
		h.avoidIDClash(cl, &pk)
	case packets.Publish:
		if err := h.checkInboundAlias(cl, pk); err != nil {
			return pk, err
		}
		markSysPublish(&pk)
	}
	return pk, nil
}

// throttle counts a SUBSCRIBE or UNSUBSCRIBE against the account's message
// rate, like a publish: it waits for its token (the connection's reads
// pause). One that would wait longer than the bound ends the connection
// (MQTT 5: DISCONNECT 0x96, message rate too high), since a SUBACK has no
// code for "try again".
func (h *Hook) throttle(cl *mqtt.Client) error {
	id, ok := h.opts.Identities.Identity(cl)
	if !ok || id.Role == acl.RoleAdmin || id.Role == acl.RoleService {
		return nil
	}
	if err := h.rates.Load().wait(id.UID); err != nil {
		h.opts.Events.Rejected(bridge.CodeRateLimited)
		if ok, held := h.refusals.Allow(cl.ID); ok {
			h.opts.Log.Info("subscribe refused", "uid", id.UID, "client", id.ClientID, "code", bridge.CodeRateLimited,
				"detail", err, "suppressed_before", held)
		}
		access.EndConnection(h.opts.Server, cl, packets.ErrMessageRateTooHigh)
		return packets.ErrRejectPacket
	}
	return nil
}

// OnDisconnect stops the connection's deliveries; what it did not
// acknowledge stays in the log for its next connection.
func (h *Hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.swaps.Delete(cl)
	h.qos2Refused.Range(func(k, _ any) bool { // usually empty
		if k.(qos2Key).cl == cl {
			if _, ok := h.qos2Refused.LoadAndDelete(k); ok {
				h.qos2Waiting.Add(-1)
			}
		}
		return true
	})
	h.receiveMax.Delete(cl)
	h.logins.Delete(cl)
	h.stashes.Delete(cl)
	if v, ok := h.flows.LoadAndDelete(cl); ok {
		v.(*flow).close()
	}
	if c := h.unregister(cl); c != nil {
		c.close()
		h.emitPresence(events.TypeLogout, c, errString(err))
		h.opts.Log.Info("disconnected", "uid", c.id.UID, "client", c.id.ClientID, "remote", cl.Net.Remote, "error", errString(err))
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Kick logs out every connection of uid, on every node (admin API). It
// returns how many were on this node.
func (h *Hook) Kick(uid, reason string) int {
	if r := h.routerOrNil(); r != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := r.Kick(ctx, uid, reason); err != nil {
			h.opts.Log.Warn("kick not sent to other nodes", "uid", uid, "error", err)
		}
	}
	return h.kickLocal(uid, reason)
}

func (h *Hook) kickLocal(uid, reason string) int {
	list := h.online(uid)
	for _, c := range list {
		h.unregister(c.cl)
		h.kick(c, reason)
	}
	return len(list)
}

type noEvents struct{}

func (noEvents) Delivered(inbox.Kind, time.Duration) {}
func (noEvents) Backlog(uint64)                      {}
func (noEvents) Acked(int)                           {}
func (noEvents) Rejected(string)                     {}
func (noEvents) Kicked()                             {}

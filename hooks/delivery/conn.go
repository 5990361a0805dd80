package delivery

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/hooks/access"
	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/internal/shallow"
	"github.com/inboxmq/inboxmq/messaging"
)

// conn is one connection's view of the logs it receives: its user's inbox
// and the broadcast log, each a lane with its own cursor, sharing one pump
// and one block of packet ids.
type conn struct {
	d    *connDeps
	cl   *mqtt.Client
	id   *access.Identity
	flow *flow // the client's Receive Maximum; nil when it set none

	// device keys the delivery cursors. In single-login mode a user's
	// connections share them (there is only ever one of them); otherwise
	// each session (internal client id) has its own.
	device string
	// persist is false for a non-persistent session in multi-device mode:
	// it starts at the end of each log and leaves no cursor behind.
	persist  bool
	loginAt  time.Time // when the connection's CONNECT was accepted
	loginSeq uint64    // the order of loginAt on this node (single-login keeps the highest)

	// ackMsgID is the id of the message the client's last publish created,
	// for the MQTT 5 ack of packet ackFor (user property msgid). Only the
	// client's read loop touches them: OnPublish sets them, and mochi writes
	// that publish's ack from the same goroutine before it reads on.
	ackFor   uint16
	ackMsgID string

	// flushMu orders the writes of the lanes' positions (see flush); it is
	// taken before mu, never while mu is held.
	flushMu sync.Mutex

	mu        sync.Mutex
	nickname  string // profile stamped on messages this connection sends
	avatar    string
	lanes     [2]lane       // laneInbox, laneBroadcast
	turn      int           // the lane the pump serves first next time
	block     []uint16      // this connection's packet ids for both lanes, see takeIDLocked
	free      []uint16      // ids of block not in any lane's window
	reserving bool          // block ids are reserved in mochi's inflight map, see mochiPublished
	flushing  bool          // a write of the lanes' acked positions is scheduled
	flushIn   time.Duration // the delay it was scheduled with
	pumping   bool          // a pump goroutine is running
	holding   bool          // wakes start no pump: the read goroutine sends (see ackcopy.go)
	closed    bool
	// pushed and pushCancelled are the user's PushedThread and
	// PushCancelledThread marks as this connection knows them (loaded
	// when its inbox lane starts, pushed raised by this node's checks).
	pushed, pushCancelled uint64
	expiry                *time.Timer // ends the connection when its token expires
}

// The lanes of a connection.
const (
	laneInbox     = 0 // inbox/{uid}: the user's own inbox
	laneBroadcast = 1 // broadcast: notices to everyone (inbox.BroadcastInbox)
)

// lane is the delivery of one log to one connection: where it stands and
// what waits for a PUBACK. Its fields are guarded by conn.mu.
type lane struct {
	log    string // the inbox read: the user's uid or inbox.BroadcastInbox
	topic  string // what its messages are published on
	cursor string // the cursor's device key in the user's inbox (Store.Cursor)
	// fromStart: a device with no cursor gets everything the log still
	// holds (a single-login user's inbox); otherwise it starts at the end.
	fromStart bool

	subscribed bool
	qos        byte
	started    bool            // cursor loaded
	next       uint64          // next Seq to send
	acked      uint64          // every Seq <= acked is acknowledged
	written    uint64          // the acked position last written to the store
	win        window          // sent at QoS 1, not yet acknowledged, in Seq order
	tail       []inbox.Message // just-appended messages from next on, see offer
	tailBytes  int             // what tail's messages weigh (msgBytes)
	tailFull   bool            // an offer did not fit: no more until the tail is taken
	head       uint64          // highest Seq known to be in the log
	mustRead   bool            // the log may have grown in ways head does not show
}

// connDeps is what a connection uses of its hook, and nothing more; the
// hook makes one at Init and every connection shares it.
type connDeps struct {
	store        inbox.Store
	service      *messaging.Service
	server       *mqtt.Server // its statistics, and ending a connection
	log          *slog.Logger
	events       Events
	window       int           // Options.Window
	writeTimeout time.Duration // Options.WriteTimeout
	tokenLeeway  *atomic.Int64 // Options.TokenLeeway, then SetTokenLeeway's
	pumps        *sync.WaitGroup
	acks         *ackWriter    // writes the acknowledged positions, batched
	shallow      *shallow.Pool // runs the cursor reads off mochi's reader goroutines
	// logEnd is the highest Seq known of a log (the hook follows the
	// broadcast log for all its connections).
	logEnd func(ctx context.Context, log string) (uint64, error)
}

func newConnDeps(h *Hook) *connDeps {
	return &connDeps{
		store: h.opts.Store, service: h.opts.Service, server: h.opts.Server, log: h.opts.Log,
		events: h.opts.Events, window: h.opts.Window, writeTimeout: h.opts.WriteTimeout,
		tokenLeeway: &h.leeway, pumps: &h.pumps, logEnd: h.logEnd, shallow: &h.shallow,
		acks: newAckWriter(h.opts.Store, h.opts.Service, h.opts.Log, &h.pumps),
	}
}

func newConn(h *Hook, cl *mqtt.Client, id *access.Identity, lg login) *conn {
	c := &conn{
		d:        h.deps,
		cl:       cl,
		id:       id,
		device:   cl.ID,
		persist:  !access.SessionExpires(cl),
		loginAt:  lg.at,
		loginSeq: lg.seq,
		nickname: id.Nickname,
		avatar:   id.Avatar,
	}
	if c.flow = h.flowOf(cl); c.flow != nil {
		c.flow.mu.Lock()
		c.flow.onRoom = c.wake
		c.flow.mu.Unlock()
	}
	single := h.opts.SingleLogin && id.Role == acl.RoleUser
	if single {
		c.device, c.persist = id.UID, true
	}
	c.lanes[laneInbox] = lane{log: id.UID, topic: InboxPrefix + id.UID, cursor: c.device, fromStart: single}
	// Device keys are uids or "uid/client", so this one never clashes with
	// them. A device new to the broadcast log starts at its end: history
	// is in the API.
	c.lanes[laneBroadcast] = lane{log: inbox.BroadcastInbox, topic: BroadcastTopic, cursor: inbox.BroadcastInbox + "/" + c.device}
	return c
}

// laneOf returns the lane delivered on topic, or -1. It reads only the
// lanes' topics, which never change, so it needs no lock.
func (c *conn) laneOf(topic string) int {
	for i := range c.lanes {
		if c.lanes[i].topic == topic {
			return i
		}
	}
	return -1
}

func (c *conn) profile() (nickname, avatar string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nickname, c.avatar
}

func (c *conn) setProfile(nickname, avatar string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if nickname != "" {
		c.nickname = nickname
	}
	if avatar != "" {
		c.avatar = avatar
	}
}

// subscribe starts (or resumes) delivery of lane at the device's cursor.
func (c *conn) subscribe(lane int, qos byte) {
	if qos > 1 {
		qos = 1
	}
	c.mu.Lock()
	c.lanes[lane].subscribed, c.lanes[lane].qos = true, qos
	c.mu.Unlock()
	c.start(lane)
}

// start loads lane's cursor if needed and wakes the pump; while the store
// is unreachable it retries every second until the connection ends.
func (c *conn) start(lane int) {
	c.mu.Lock()
	started, closed := c.lanes[lane].started, c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	if !started {
		// Store reads, on mochi's reader goroutine when a client subscribes:
		// run where their stack does not stay allocated (package shallow).
		var err error
		c.d.shallow.Run(func() { err = c.loadCursor(lane) })
		if err != nil {
			c.d.log.Error("delivery not started: store error; retrying", "uid", c.id.UID, "client", c.id.ClientID,
				"topic", c.lanes[lane].topic, "error", err)
			time.AfterFunc(time.Second, func() { c.start(lane) })
			return
		}
		// loadCursor read the inbox's head from the store, and appends
		// since then raised it (offer): a caught-up connection needs no
		// read to find out, which matters in a reconnect storm.
		c.wake()
		return
	}
	c.wakeRead(lane)
}

func (c *conn) loadCursor(lane int) error {
	ctx := context.Background()
	store := c.d.store
	c.mu.Lock()
	l := c.lanes[lane] // the fixed fields
	c.mu.Unlock()
	cursor, ok, err := store.Cursor(ctx, c.id.UID, l.cursor)
	if err != nil {
		return err
	}
	last, err := c.d.logEnd(ctx, l.log)
	if err != nil {
		return err
	}
	if !ok || !c.persist {
		// A device new to the log: in single-login mode it is the user's
		// only device and gets everything its inbox still holds; a further
		// device, and every device on the broadcast log, starts with what
		// arrives from now on (history is in the API).
		cursor = 0
		if !l.fromStart {
			cursor = last
		}
		if c.persist && cursor > 0 {
			// Pinned now, or a device that acknowledges nothing before it
			// goes offline would start at the then end next time and miss
			// what arrived in between.
			if err := store.SetCursor(ctx, c.id.UID, l.cursor, cursor); err != nil {
				return err
			}
		}
	}
	var pushed, cancelled uint64
	if lane == laneInbox && c.d.service.PushEnabled() {
		if pushed, err = store.ReadMark(ctx, c.id.UID, messaging.PushedThread); err != nil {
			return err
		}
		if cancelled, err = store.ReadMark(ctx, c.id.UID, messaging.PushCancelledThread); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if lane == laneInbox {
		c.pushed, c.pushCancelled = max(c.pushed, pushed), max(c.pushCancelled, cancelled)
	}
	if p := &c.lanes[lane]; !p.started {
		p.started, p.acked, p.written, p.next = true, cursor, cursor, cursor+1
		p.head = max(p.head, last)
		if last > cursor {
			c.d.events.Backlog(last - cursor)
		}
	}
	return nil
}

func (c *conn) unsubscribe(lane int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lanes[lane].subscribed = false
}

// canSendLocked reports whether the pump may send more on l. c.mu must be held.
func (c *conn) canSendLocked(l *lane) bool {
	return !c.closed && l.subscribed && l.started &&
		(l.qos == 0 || (l.win.size() < c.d.window && c.flow.room() > 0))
}

// wakeRead is wake for news from outside this node's append path (another
// node, a retry): the pump reads lane's log even if it believes it is
// caught up.
func (c *conn) wakeRead(lane int) {
	c.mu.Lock()
	c.lanes[lane].mustRead = true
	c.mu.Unlock()
	c.wake()
}

// hasWorkLocked reports whether a pump would find something to send on l:
// offered messages, news from outside (mustRead), or Seqs up to head not
// yet sent. c.mu must be held.
func (l *lane) hasWorkLocked() bool {
	return len(l.tail) > 0 || l.mustRead || l.next <= l.head
}

// readyLocked returns a lane the pump can send on and that has work,
// starting with c.turn so neither log starves the other, or nil. c.mu
// must be held.
func (c *conn) readyLocked() (int, *lane) {
	for k := range c.lanes {
		i := (c.turn + k) % len(c.lanes)
		if l := &c.lanes[i]; c.canSendLocked(l) && l.hasWorkLocked() {
			return i, l
		}
	}
	return -1, nil
}

// wake makes sure a pump runs if there may be something to send. It
// starts no goroutine that would find nothing: under load every PUBACK
// calls it. While wakes are held, whoever releases them looks instead.
func (c *conn) wake() {
	c.mu.Lock()
	_, l := c.readyLocked()
	start := !c.pumping && !c.holding && l != nil
	if start {
		c.pumping = true
	}
	c.mu.Unlock()
	if start {
		c.d.pumps.Add(1)
		go func() {
			defer c.d.pumps.Done()
			c.pump()
		}()
	}
}

// close stops deliveries and takes this connection's inbox packets out of
// mochi's inflight map.
func (c *conn) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.flushing = true // the final positions are written below, whatever was scheduled
	unackedN := 0
	for k := range c.lanes {
		unackedN += c.lanes[k].win.reset()
	}
	atomic.AddInt64(&c.d.server.Info.Inflight, -int64(unackedN))
	c.trimBlockLocked(0)
	c.mu.Unlock()
	c.flush()
}

// notePushed is told that a push event went out for the user's message seq.
func (c *conn) notePushed(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pushed = max(c.pushed, seq)
}

func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// writeTransient sends an envelope that is not part of the log (Error,
// Logout) at QoS 0, if the connection listens to its inbox.
func (c *conn) writeTransient(payload []byte) { c.writeLive(laneInbox, payload) }

// writeLive sends an envelope that is not in lane's log at QoS 0 on the
// lane's topic, if the connection is subscribed to it.
func (c *conn) writeLive(lane int, payload []byte) {
	c.mu.Lock()
	l := c.lanes[lane]
	c.mu.Unlock()
	if !l.subscribed {
		return
	}
	_ = c.cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   l.topic,
		Payload:     payload,
	})
}

package delivery

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/hooks/access"
	"github.com/inboxmq/inboxmq/inbox"
)

// conn is one connection's view of its inbox: where delivery stands and
// what waits for a PUBACK.
type conn struct {
	h     *Hook
	cl    *mqtt.Client
	id    *access.Identity
	topic string // inbox/{uid}

	// device keys the delivery cursor. In single-login mode a user's
	// connections share one cursor (there is only ever one of them);
	// otherwise each session (internal client id) has its own.
	device string
	// persist is false for a non-persistent session in multi-device mode:
	// it starts at the end of the inbox and leaves no cursor behind.
	persist bool
	loginAt time.Time // when the connection was established

	mu         sync.Mutex
	nickname   string // profile stamped on messages this connection sends
	avatar     string
	subscribed bool
	qos        byte
	started    bool            // cursor loaded
	next       uint64          // next Seq to send
	acked      uint64          // every Seq <= acked is acknowledged
	written    uint64          // the acked position last written to the store
	flushing   bool            // a write of acked is scheduled
	pending    []unacked       // sent, not yet acknowledged, in Seq order
	block      []uint16        // this connection's inbox packet ids, see takeIDLocked
	free       []uint16        // ids of block not in pending
	tail       []inbox.Message // just-appended messages from next on, see offer
	pumping    bool            // a pump goroutine is running
	head       uint64          // highest Seq known to be in the inbox
	mustRead   bool            // the inbox may have grown in ways head does not show
	closed     bool
}

type unacked struct {
	seq   uint64
	pid   uint16
	acked bool
}

func newConn(h *Hook, cl *mqtt.Client, id *access.Identity) *conn {
	c := &conn{
		h:        h,
		cl:       cl,
		id:       id,
		topic:    InboxPrefix + id.UID,
		device:   cl.ID,
		persist:  !sessionExpires(cl),
		loginAt:  time.Now(),
		nickname: id.Nickname,
		avatar:   id.Avatar,
	}
	if h.opts.SingleLogin && id.Role == acl.RoleUser {
		c.device, c.persist = id.UID, true
	}
	return c
}

func sessionExpires(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval == 0
	}
	return cl.Properties.Clean
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

// subscribe starts (or resumes) delivery at the device's cursor.
func (c *conn) subscribe(qos byte) {
	if qos > 1 {
		qos = 1
	}
	c.mu.Lock()
	c.subscribed, c.qos = true, qos
	c.mu.Unlock()
	c.start()
}

// start loads the cursor if needed and wakes the pump; while the store is
// unreachable it retries every second until the connection ends.
func (c *conn) start() {
	c.mu.Lock()
	started, closed := c.started, c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	if !started {
		if err := c.loadCursor(); err != nil {
			c.h.opts.Log.Error("inbox delivery not started: store error; retrying", "uid", c.id.UID, "client", c.id.ClientID, "error", err)
			time.AfterFunc(time.Second, c.start)
			return
		}
		// loadCursor read the inbox's head from the store, and appends
		// since then raised it (offer): a caught-up connection needs no
		// read to find out, which matters in a reconnect storm.
		c.wake()
		return
	}
	c.wakeRead()
}

func (c *conn) loadCursor() error {
	ctx := context.Background()
	store := c.h.opts.Store
	cursor, ok, err := store.Cursor(ctx, c.id.UID, c.device)
	if err != nil {
		return err
	}
	if !ok || !c.persist {
		// A device new to the log: in single-login mode it is the user's
		// only device and gets everything still held; a further device
		// starts with what arrives from now on (history is in the API).
		cursor = 0
		if !(c.h.opts.SingleLogin && c.id.Role == acl.RoleUser) {
			if _, cursor, err = store.Bounds(ctx, c.id.UID); err != nil {
				return err
			}
		}
	}
	_, last, err := store.Bounds(ctx, c.id.UID)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		c.started, c.acked, c.next = true, cursor, cursor+1
		c.head = max(c.head, last)
		if last > cursor {
			c.h.opts.Events.Backlog(last - cursor)
		}
	}
	return nil
}

func (c *conn) unsubscribe() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.subscribed = false
}

// canSendLocked reports whether the pump may send more. c.mu must be held.
func (c *conn) canSendLocked() bool {
	return !c.closed && c.subscribed && c.started && (c.qos == 0 || len(c.pending) < c.h.opts.Window)
}

// tailMax bounds the messages a connection keeps in memory for its pump.
const tailMax = 256

// offer hands a just-appended message to the connection, so a pump that is
// caught up sends it without reading the log back (the live path: no store
// read per delivery). Only a gap-free run starting at or after next is
// kept; anything else is left to the log.
func (c *conn) offer(m inbox.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.head = max(c.head, m.Seq)
	if !c.started || c.closed || m.Seq < c.next {
		return
	}
	if n := len(c.tail); (n > 0 && c.tail[n-1].Seq+1 != m.Seq) || n >= tailMax {
		c.tail = c.tail[:0] // a gap: the pump reads the log instead
	}
	if len(c.tail) == 0 && m.Seq != c.next {
		return
	}
	c.tail = append(c.tail, m)
}

// takeTailLocked returns up to room cached messages starting exactly at
// from, or nil when the cache does not start there. c.mu must be held.
func (c *conn) takeTailLocked(from uint64, room int) []inbox.Message {
	for len(c.tail) > 0 && c.tail[0].Seq < from {
		c.tail = c.tail[1:]
	}
	if len(c.tail) == 0 || c.tail[0].Seq != from || room <= 0 {
		return nil
	}
	n := min(room, len(c.tail))
	out := append([]inbox.Message(nil), c.tail[:n]...)
	c.tail = c.tail[n:]
	if len(c.tail) == 0 {
		c.tail = nil // let the backing array go
	}
	return out
}

// keepAheadLocked makes messages read past the window's room the start of
// the tail. Offers that arrived during the read and continue them stay;
// the ones the read already covered go. A Seq missing inside ahead was
// missing from the log (deleted), so the run is still gap-free for
// delivery. c.mu must be held.
func (c *conn) keepAheadLocked(ahead []inbox.Message) {
	last := ahead[len(ahead)-1].Seq
	i := 0
	for i < len(c.tail) && c.tail[i].Seq <= last {
		i++
	}
	later := c.tail[i:]
	tail := make([]inbox.Message, 0, len(ahead)+len(later))
	tail = append(tail, ahead...)
	if len(later) > 0 && later[0].Seq == last+1 && len(tail)+len(later) <= tailMax {
		tail = append(tail, later...)
	}
	c.tail = tail
}

// wakeRead is wake for news from outside this node's append path (another
// node, a retry): the pump reads the store even if it believes it is caught up.
func (c *conn) wakeRead() {
	c.mu.Lock()
	c.mustRead = true
	c.mu.Unlock()
	c.wake()
}

// hasWorkLocked reports whether a pump would find something to send:
// offered messages, news from outside (mustRead), or Seqs up to head not
// yet sent. c.mu must be held.
func (c *conn) hasWorkLocked() bool {
	return len(c.tail) > 0 || c.mustRead || c.next <= c.head
}

// wake makes sure a pump runs if there may be something to send. It
// starts no goroutine that would find nothing: under load every PUBACK
// calls it.
func (c *conn) wake() {
	c.mu.Lock()
	start := !c.pumping && c.canSendLocked() && c.hasWorkLocked()
	if start {
		c.pumping = true
	}
	c.mu.Unlock()
	if start {
		c.h.pumps.Add(1)
		go func() {
			defer c.h.pumps.Done()
			c.pump()
		}()
	}
}

// pump sends the log after the cursor until the window is full or the log
// is drained. One pump per connection at a time (c.pumping). It reads the
// store only when it must: just-appended messages come from the tail, and
// when next is past the highest Seq known to exist there is nothing to
// read (a wake from outside this node sets mustRead instead).
func (c *conn) pump() {
	ctx := context.Background()
	for {
		c.mu.Lock()
		if !c.canSendLocked() {
			c.pumping = false
			c.mu.Unlock()
			return
		}
		from, room, qos := c.next, c.h.opts.Window, c.qos
		if qos == 1 {
			room -= len(c.pending)
		}
		msgs := c.takeTailLocked(from, room)
		read := len(msgs) == 0 && (c.mustRead || from <= c.head)
		if len(msgs) == 0 && !read {
			// Deciding under the lock that also clears pumping: an offer
			// and wake after this start a new pump.
			c.pumping = false
			c.mu.Unlock()
			return
		}
		c.mustRead = false
		headAtRead := c.head
		c.mu.Unlock()

		if read {
			// Read up to a window ahead: what does not fit now waits in
			// the tail, so draining a backlog takes one read per two
			// windows instead of one per refill.
			want := room
			if qos == 1 {
				want = min(room+c.h.opts.Window, tailMax)
			}
			var err error
			msgs, err = c.h.opts.Store.Read(ctx, c.id.UID, from, want)
			if err != nil {
				c.h.opts.Log.Error("inbox read failed; retrying in a second",
					"uid", c.id.UID, "client", c.id.ClientID, "error", err)
				c.stopPump()
				time.AfterFunc(time.Second, c.wakeRead) // the store may be back (Redis restart)
				return
			}
			c.mu.Lock()
			if len(msgs) > 0 {
				c.head = max(c.head, msgs[len(msgs)-1].Seq)
			} else if c.head == headAtRead {
				c.head = from - 1 // what was known is gone (deleted, expired)
			}
			if len(msgs) > room {
				c.keepAheadLocked(msgs[room:])
				msgs = msgs[:room]
			}
			c.mu.Unlock()
		}
		if !c.send(msgs) {
			return
		}
	}
}

func (c *conn) stopPump() {
	c.mu.Lock()
	c.pumping = false
	c.mu.Unlock()
}

// wireBuf is what send encodes a batch with: the packets, and the
// envelope being rendered. Recycled, so a delivery allocates neither.
type wireBuf struct{ packets, envelope []byte }

var wireBufs = sync.Pool{New: func() any { return new(wireBuf) }}

// send writes msgs, the next messages of the inbox in Seq order, in one
// write: under load or at a reconnect a pump has many messages ready, and
// mochi's WritePacket costs a syscall, a buffer and a hook call for each.
// It reports whether the pump may go on; when it may not, pumping is
// already cleared.
//
// Each message gets its packet id and its place in pending before any byte
// is written, so a PUBACK can never arrive for an id not yet pending.
func (c *conn) send(msgs []inbox.Message) bool {
	wb := wireBufs.Get().(*wireBuf)
	defer func() {
		if cap(wb.packets) <= 64<<10 && cap(wb.envelope) <= 64<<10 {
			wireBufs.Put(wb)
		}
	}()
	buf, scratch := wb.packets[:0], wb.envelope[:0]
	v5 := c.cl.Properties.ProtocolVersion == 5
	maxSize := int(c.cl.Properties.Props.MaximumPacketSize)
	// sent collects the messages written, in place over msgs (which the
	// pump owns): it never gets ahead of the loop reading msgs.
	sent := msgs[:0]
	n := len(msgs)
	done := 0 // sent or skipped

	c.mu.Lock()
	for _, m := range msgs {
		if !c.canSendLocked() {
			break
		}
		done++
		var err error
		scratch, err = bridge.AppendEnvelope(scratch[:0], m)
		if err == nil && maxSize > 0 && publishSize(c.topic, c.qos, v5, len(scratch)) > maxSize {
			// MQTT 5 [MQTT-3.1.2-25]: a packet over the client's maximum is
			// discarded as if sent; it stays in history.
			err = fmt.Errorf("%d-byte envelope is over the client's maximum packet size %d", len(scratch), maxSize)
		}
		if err != nil {
			// Sending nothing and moving on: a message that cannot be
			// delivered must not wedge the inbox.
			c.h.opts.Log.Error("inbox message not deliverable, skipped", "uid", c.id.UID, "client", c.id.ClientID,
				"seq", m.Seq, "error", err)
			c.next = m.Seq + 1
			c.advanceLocked(m.Seq)
			continue
		}
		var pid uint16
		if c.qos == 1 {
			var ok bool
			if pid, ok = c.takeIDLocked(); !ok {
				done-- // every id is out: the next ack wakes the pump
				break
			}
			c.pending = append(c.pending, unacked{seq: m.Seq, pid: pid})
			atomic.AddInt64(&c.h.opts.Server.Info.Inflight, 1)
		} else {
			c.advanceLocked(m.Seq)
		}
		c.next = m.Seq + 1
		buf = appendPublish(buf, c.topic, pid, c.qos, v5, scratch)
		sent = append(sent, m)
	}
	// All of msgs handled: the loop in pump decides, under c.mu, whether
	// to go on. Stopping here instead clears pumping under the same lock
	// as the decision, or an ack's wake in between would find a pump
	// still marked running and start none.
	goOn := done == n
	if !goOn {
		c.pumping = false
	}
	c.mu.Unlock()
	wb.packets, wb.envelope = buf, scratch

	if len(buf) > 0 {
		if err := c.write(buf, len(sent)); err != nil {
			if goOn {
				c.stopPump() // the connection is closing; the log keeps the messages
			}
			return false
		}
		for _, m := range sent {
			c.h.opts.Events.Delivered(m.Kind, time.Since(time.UnixMilli(m.Time)))
		}
	}
	return goOn
}

// write puts encoded packets on the wire the way mochi's WritePacket does
// (under the client's lock, so they never interleave with mochi's own
// writes) and counts them in mochi's statistics.
func (c *conn) write(b []byte, publishes int) error {
	cl := c.cl
	if cl.Closed() || cl.Net.Conn == nil {
		return mqtt.ErrConnectionClosed
	}
	cl.Lock()
	n, err := cl.Net.Conn.Write(b)
	cl.Unlock()
	info := c.h.opts.Server.Info
	atomic.AddInt64(&info.BytesSent, int64(n))
	if err != nil {
		return err
	}
	atomic.AddInt64(&info.PacketsSent, int64(publishes))
	atomic.AddInt64(&info.MessagesSent, int64(publishes))
	return nil
}

// ack handles a PUBACK: the acknowledged prefix of pending moves the
// cursor. It reports whether pid is an inbox packet id of this connection,
// which mochi must not see (see takeIDLocked).
func (c *conn) ack(pid uint16) (inboxID bool) {
	c.mu.Lock()
	inboxID = c.ownsIDLocked(pid)
	found := false
	for i := range c.pending {
		if c.pending[i].pid == pid && !c.pending[i].acked {
			c.pending[i].acked, found = true, true
			c.free = append(c.free, pid)
			atomic.AddInt64(&c.h.opts.Server.Info.Inflight, -1)
			break
		}
	}
	if !found || c.closed {
		c.mu.Unlock()
		return inboxID
	}
	n := 0
	for n < len(c.pending) && c.pending[n].acked {
		n++
	}
	// Refill at half a window, not at every ack: a pump then reads and
	// writes a batch, instead of one message per PUBACK while a backlog
	// drains.
	refill := n > 0 && len(c.pending)-n <= c.h.opts.Window/2
	if n > 0 {
		c.advanceLocked(c.pending[n-1].seq)
		c.pending = append(c.pending[:0], c.pending[n:]...)
		if len(c.pending) == 0 {
			c.trimBlockLocked(blockIdle)
		}
	}
	c.mu.Unlock()
	c.h.opts.Events.Acked(1)
	if refill {
		c.wake()
	}
	return inboxID
}

// cursorFlushDelay is how long acknowledged positions may wait in memory
// before they are written: under load, one write covers many PUBACKs
// (with Redis, one round trip instead of one per message). A crash loses at
// most this much progress, which costs duplicates, never messages.
const cursorFlushDelay = 20 * time.Millisecond

// advanceLocked moves the cursor to seq and schedules its write. c.mu must
// be held.
func (c *conn) advanceLocked(seq uint64) {
	if seq <= c.acked {
		return
	}
	c.acked = seq
	if !c.persist && (c.h.pushes == nil || c.device == c.id.UID) {
		return // nothing to write
	}
	if !c.flushing {
		c.flushing = true
		time.AfterFunc(cursorFlushDelay, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.flushLocked()
		})
	}
}

// flushLocked writes the acknowledged position. Writing under c.mu keeps
// writes in order and makes close() a barrier: once it returns, the next
// connection of the device reads the final cursor.
func (c *conn) flushLocked() {
	if !c.flushing {
		return
	}
	c.flushing = false
	if c.acked <= c.written {
		return
	}
	seq, ctx := c.acked, context.Background()
	if c.persist {
		if err := c.h.opts.Store.SetCursor(ctx, c.id.UID, c.device, seq); err != nil {
			// Only costs duplicates on the next connection.
			c.h.opts.Log.Warn("cursor not saved", "uid", c.id.UID, "device", c.device, "seq", seq, "error", err)
		}
	}
	if c.h.pushes != nil && c.device != c.id.UID {
		// Several devices: the push fallback needs the highest ack of any.
		if err := c.h.opts.Store.MarkRead(ctx, c.id.UID, AckedThread, seq); err != nil {
			c.h.opts.Log.Warn("acked mark not saved", "uid", c.id.UID, "seq", seq, "error", err)
		}
	}
	c.written = seq
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
	c.flushLocked()
	unackedN := 0
	for _, p := range c.pending {
		if !p.acked {
			unackedN++
		}
	}
	atomic.AddInt64(&c.h.opts.Server.Info.Inflight, -int64(unackedN))
	c.pending = nil
	c.trimBlockLocked(0)
	c.mu.Unlock()
}

func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// writeTransient sends an envelope that is not part of the log (Error,
// Logout) at QoS 0, if the connection listens to its inbox.
func (c *conn) writeTransient(payload []byte) {
	c.mu.Lock()
	subscribed := c.subscribed
	c.mu.Unlock()
	if !subscribed {
		return
	}
	_ = c.cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   c.topic,
		Payload:     payload,
	})
}

package delivery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/inbox"
)

// The pump: a short-lived goroutine per connection that reads its logs
// after the lanes' positions and writes PUBLISH packets while the windows
// have room (see conn for the lanes, acks.go for what a PUBACK does).

// pump sends the log after the cursor until the window is full or the log
// is drained. One pump per connection at a time (c.pumping). It reads the
// store only when it must: just-appended messages come from the tail, and
// when next is past the highest Seq known to exist there is nothing to
// read (a wake from outside this node sets mustRead instead).
func (c *conn) pump() {
	ctx := context.Background()
	for {
		c.mu.Lock()
		i, l := c.readyLocked()
		if l == nil {
			// Deciding under the lock that also clears pumping: an offer
			// and wake after this start a new pump.
			c.pumping = false
			c.mu.Unlock()
			return
		}
		c.turn = (i + 1) % len(c.lanes)
		from, room, qos := l.next, c.roomLocked(l), l.qos
		msgs := l.takeTailLocked(from, room)
		read := len(msgs) == 0 && (l.mustRead || from <= l.head)
		if len(msgs) == 0 && !read {
			c.mu.Unlock() // the tail held only what was sent: look again
			continue
		}
		l.mustRead = false
		headAtRead := l.head
		c.mu.Unlock()

		if read {
			// Read up to a window ahead: what does not fit now waits in
			// the tail, so draining a backlog takes one read per two
			// windows instead of one per refill.
			want := room
			if qos == 1 {
				want = min(room+c.d.window, tailMax)
			}
			var err error
			msgs, err = c.d.store.Read(ctx, l.log, from, want)
			if err != nil {
				c.d.log.Error("inbox read failed; retrying in a second",
					"uid", c.id.UID, "client", c.id.ClientID, "log", l.log, "error", err)
				c.stopPump()
				time.AfterFunc(time.Second, func() { c.wakeRead(i) }) // the store may be back (Redis restart)
				return
			}
			c.mu.Lock()
			if len(msgs) > 0 {
				l.head = max(l.head, msgs[len(msgs)-1].Seq)
			} else if l.head == headAtRead {
				l.head = from - 1 // what was known is gone (deleted, expired)
			}
			if len(msgs) > room {
				l.keepAheadLocked(msgs[room:])
				msgs = msgs[:room]
			}
			c.mu.Unlock()
		}
		if !c.send(l, msgs) {
			return
		}
	}
}

// roomLocked is how many messages l may send now: a window, less what
// waits for a PUBACK at QoS 1, within the client's Receive Maximum. c.mu
// must be held.
func (c *conn) roomLocked(l *lane) int {
	if l.qos == 1 {
		return min(c.d.window-l.win.size(), c.flow.room())
	}
	return c.d.window
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

// send writes msgs, the next messages of l's log in Seq order, in one
// write: under load or at a reconnect a pump has many messages ready, and
// mochi's WritePacket costs a syscall, a buffer and a hook call for each.
// It reports whether the pump may go on; when it may not, pumping is
// already cleared.
//
// Each message gets its packet id and its place in the window before any
// byte is written, so a PUBACK can never arrive for an id not yet there.
func (c *conn) send(l *lane, msgs []inbox.Message) bool {
	return c.sendAfter(nil, l, msgs)
}

// sendAfter is send with the packets in before (an ack, see ackcopy.go)
// written first, in the same write, even when no message can go.
func (c *conn) sendAfter(before []byte, l *lane, msgs []inbox.Message) bool {
	wb := wireBufs.Get().(*wireBuf)
	defer func() {
		if cap(wb.packets) <= 64<<10 && cap(wb.envelope) <= 64<<10 {
			wireBufs.Put(wb)
		}
	}()
	buf, scratch := append(wb.packets[:0], before...), wb.envelope[:0]
	v5 := c.cl.Properties.ProtocolVersion == 5
	maxSize := int(c.cl.Properties.Props.MaximumPacketSize)
	// sent collects the messages written, in place over msgs (which the
	// pump owns): it never gets ahead of the loop reading msgs.
	sent := msgs[:0]
	n := len(msgs)
	done := 0 // sent or skipped

	c.mu.Lock()
	for _, m := range msgs {
		if !c.canSendLocked(l) {
			break
		}
		done++
		var err error
		scratch, err = bridge.AppendEnvelope(scratch[:0], m)
		if err == nil && maxSize > 0 && publishSize(l.topic, l.qos, v5, len(scratch)) > maxSize {
			// MQTT 5 [MQTT-3.1.2-25]: a packet over the client's maximum is
			// discarded as if sent; it stays in history.
			err = fmt.Errorf("%d-byte envelope is over the client's maximum packet size %d", len(scratch), maxSize)
		}
		if err != nil {
			// Sending nothing and moving on: a message that cannot be
			// delivered must not wedge the inbox.
			c.d.log.Error("message not deliverable, skipped", "uid", c.id.UID, "client", c.id.ClientID,
				"log", l.log, "seq", m.Seq, "error", err)
			l.next = m.Seq + 1
			c.advanceLocked(l, m.Seq)
			continue
		}
		var pid uint16
		if l.qos == 1 {
			if c.flow.reserve(1) == 0 {
				done-- // at the client's Receive Maximum: an ack wakes the pump
				break
			}
			var ok bool
			if pid, ok = c.takeIDLocked(); !ok {
				c.flow.unreserve(1)
				done-- // every id is out: the next ack wakes the pump
				break
			}
			l.win.add(m.Seq, pid)
			atomic.AddInt64(&c.d.server.Info.Inflight, 1)
		} else {
			c.advanceLocked(l, m.Seq)
		}
		l.next = m.Seq + 1
		buf = appendPublish(buf, l.topic, pid, l.qos, v5, scratch)
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
		if len(before) > 0 {
			atomic.AddInt64(&c.d.server.Info.PacketsSent, 1) // the ack
		}
		for _, m := range sent {
			c.d.events.Delivered(m.Kind, time.Since(time.UnixMilli(m.Time)))
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
	// A client that stopped reading must not hold this pump, and mochi's
	// writes behind the same lock, for ever: it is disconnected instead.
	_ = cl.Net.Conn.SetWriteDeadline(time.Now().Add(c.d.writeTimeout))
	n, err := cl.Net.Conn.Write(b)
	_ = cl.Net.Conn.SetWriteDeadline(time.Time{})
	cl.Unlock()
	info := c.d.server.Info
	atomic.AddInt64(&info.BytesSent, int64(n))
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.d.log.Info("disconnected: not reading", "uid", c.id.UID, "client", c.id.ClientID,
				"remote", cl.Net.Remote, "write_timeout", c.d.writeTimeout)
		}
		cl.Stop(fmt.Errorf("delivery write: %w", err))
		return err
	}
	atomic.AddInt64(&info.PacketsSent, int64(publishes))
	atomic.AddInt64(&info.MessagesSent, int64(publishes))
	return nil
}

package delivery

import (
	"sync/atomic"

	"github.com/inboxmq/inboxmq/inbox"
)

// The ack of a direct message and the sender's copy of it, in one write.
//
// A stored im/sendmsg owes its sender two packets: the PUBACK, and the
// MsgSent copy on the sender's inbox lane. Written apart, mochi writes the
// ack after OnPublish returns and a new pump goroutine writes the copy:
// two write syscalls (each one a loopback TCP send, the costliest call per
// message in the dm profile) and a goroutine. So for a QoS 1 im/sendmsg
// the hook writes the ack itself (OnPublish then answers ErrRejectPacket,
// and mochi writes none) and, when no pump runs, sends what the lanes'
// tails hold (the copy) from the client's read goroutine, ack first, in
// one write.
//
// While the request is stored, the connection's wakes are held
// (conn.holding): the copy that Stored offers would otherwise start a
// pump at once. A wake held meanwhile (an ack, a message from someone
// else) is not lost: releasing the hold looks for work like a wake does.
// The hold lasts one Submit, so a delivery to the sender waits at most
// that long (an fsync with the embedded store).
//
// A message that needs a store read is left to a pump goroutine, so the
// read goroutine never reads the log (its stack stays small, see package
// shallow).

// holdWakes keeps wakes from starting a pump until releaseWakes or
// ackAndSend.
func (c *conn) holdWakes() {
	c.mu.Lock()
	c.holding = true
	c.mu.Unlock()
}

// releaseWakes ends the hold and does what the wakes held would have done.
func (c *conn) releaseWakes() {
	c.mu.Lock()
	c.holding = false
	c.mu.Unlock()
	c.wake()
}

// ackAndSend ends the hold and writes ack, with what the lanes' tails
// hold for the client now, in one write; a pump goroutine goes on if more
// is left. A failed write stops the client (conn.write): there is nobody
// left to tell.
func (c *conn) ackAndSend(ack []byte) {
	c.mu.Lock()
	c.holding = false
	var msgs []inbox.Message
	i, l := -1, (*lane)(nil)
	if !c.pumping { // a running pump sends what was offered itself
		i, l = c.readyLocked()
	}
	if l != nil {
		c.turn = (i + 1) % len(c.lanes)
		msgs = l.takeTailLocked(l.next, c.roomLocked(l))
		c.pumping = true // this goroutine pumps, or starts one below
	}
	c.mu.Unlock()

	if l == nil {
		c.writeAck(ack)
		return
	}
	if len(msgs) == 0 {
		// The lane needs a read: a pump's work, after the ack.
		c.writeAck(ack)
		c.startPump()
		return
	}
	if !c.sendAfter(ack, l, msgs) {
		return // pumping cleared; a write error stopped the client
	}
	c.mu.Lock()
	_, more := c.readyLocked()
	if more == nil {
		c.pumping = false
	}
	c.mu.Unlock()
	if more != nil {
		c.startPump()
	}
}

// writeAck writes ack alone; a failed write stops the client.
func (c *conn) writeAck(ack []byte) {
	if c.write(ack, 0) == nil {
		atomic.AddInt64(&c.d.server.Info.PacketsSent, 1)
	}
}

// startPump runs a pump goroutine; the caller set c.pumping.
func (c *conn) startPump() {
	c.d.pumps.Add(1)
	go func() {
		defer c.d.pumps.Done()
		c.pump()
	}()
}

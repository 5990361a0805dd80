package delivery

import (
	"sync/atomic"
	"time"
)

// Acknowledgements: a PUBACK frees its packet id and its unit of the
// client's Receive Maximum, and the acknowledged prefix of a lane moves
// the device's cursor, written to the store shortly after (coalesced).

// ack handles a PUBACK: the acknowledged prefix of the window moves the
// cursor. It reports whether pid is an inbox packet id of this connection,
// which mochi must not see (see takeIDLocked).
func (c *conn) ack(pid uint16) (inboxID bool) {
	c.mu.Lock()
	inboxID = c.ownsIDLocked(pid)
	var l *lane
	for k := range c.lanes {
		if c.lanes[k].win.ack(pid) {
			l = &c.lanes[k]
			c.free = append(c.free, pid)
			atomic.AddInt64(&c.d.server.Info.Inflight, -1)
			break
		}
	}
	if l == nil || c.closed {
		c.mu.Unlock()
		if l != nil {
			c.flow.release(1)
		}
		return inboxID
	}
	through, n := l.win.advance()
	// Refill at half a window, not at every ack: a pump then reads and
	// writes a batch, instead of one message per PUBACK while a backlog
	// drains.
	refill := n > 0 && l.win.size() <= c.d.window/2
	if n > 0 {
		c.advanceLocked(l, through)
		if c.inFlightLocked() == 0 {
			c.trimBlockLocked(blockIdle)
		}
	}
	c.mu.Unlock()
	c.d.events.Acked(1)
	// Room under the client's Receive Maximum goes to mochi's queued
	// publishes first, then wakes the pump itself.
	c.flow.release(1)
	if refill {
		c.wake()
	}
	return inboxID
}

// inFlightLocked counts the messages in every lane's window. c.mu must be held.
func (c *conn) inFlightLocked() int {
	n := 0
	for k := range c.lanes {
		n += c.lanes[k].win.size()
	}
	return n
}

// cursorFlushDelay is how long acknowledged positions may wait in memory
// before they are written: under load, one write covers many PUBACKs
// (with Redis, one round trip instead of one per message). A crash loses at
// most this much progress, which costs duplicates, never messages.
const cursorFlushDelay = 20 * time.Millisecond

// broadcastFlushDelay is cursorFlushDelay for the broadcast log alone. A
// broadcast moves every subscriber's cursor at once, so writing each within
// 20 ms would cost a store write per delivery; a crash repeats at most a
// second of broadcasts. A clean disconnect writes at once (close).
const broadcastFlushDelay = time.Second

// advanceLocked moves l's cursor to seq and schedules its write. c.mu
// must be held.
func (c *conn) advanceLocked(l *lane, seq uint64) {
	if seq <= l.acked {
		return
	}
	l.acked = seq
	if l == &c.lanes[laneInbox] && c.pushed > c.pushCancelled && seq >= c.pushed {
		c.pushCancelled = c.pushed
		uid, seq := c.id.UID, c.pushed
		c.d.pumps.Add(1) // Wait covers it, so the store outlives it
		go func() {
			defer c.d.pumps.Done()
			c.d.service.CancelPush(uid, seq)
		}()
	}
	if !c.persist && !c.marksAcked(l) {
		return // nothing to write
	}
	delay := cursorFlushDelay
	if l == &c.lanes[laneBroadcast] {
		delay = broadcastFlushDelay
	}
	// A sooner write covers every lane. The node's connections are written
	// together (ackWriter).
	if !c.flushing || delay < c.flushIn {
		c.flushing, c.flushIn = true, delay
		c.d.acks.schedule(c, delay)
	}
}

// marksAcked reports whether acks on l also move the user's messaging.AckedThread
// mark: with several devices of a user, the push fallback needs the
// highest inbox ack of any.
func (c *conn) marksAcked(l *lane) bool {
	return l == &c.lanes[laneInbox] && c.d.service.PushEnabled() && c.device != c.id.UID
}

// flush writes the lanes' acknowledged positions now: close calls it, so
// once close returns the next connection of the device reads the final
// cursors. The store writes run under flushMu, not mu: a sender's offer or
// a PUBACK never waits behind this connection's store round trip. Under
// load positions are written by the node's ackWriter instead, in batches.
//
// Lock order: flushMu, then mu.
func (c *conn) flush() {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	if a := c.takeAcked(); a != nil {
		c.d.acks.write([]*acked{a})
	}
}

// takeAcked returns the positions to write, if a write is scheduled and
// any lane moved since the last one, and unschedules it.
func (c *conn) takeAcked() *acked {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.flushing {
		return nil
	}
	c.flushing = false
	var a *acked
	for k := range c.lanes {
		if l := &c.lanes[k]; l.acked > l.written {
			if a == nil {
				a = &acked{c: c}
			}
			a.pos = append(a.pos, position{lane: k, cursor: l.cursor, from: l.written + 1, seq: l.acked,
				save: c.persist, mark: c.marksAcked(l)})
		}
	}
	return a
}

// wrote records positions as written.
func (c *conn) wrote(pos []position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range pos {
		c.lanes[p.lane].written = max(c.lanes[p.lane].written, p.seq)
	}
}

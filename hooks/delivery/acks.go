package delivery

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/inboxmq/inboxmq/messaging"
)

// Acknowledgements: a PUBACK frees its packet id and its unit of the
// client's Receive Maximum, and the acknowledged prefix of a lane moves
// the device's cursor, written to the store shortly after (coalesced).

// ack handles a PUBACK: the acknowledged prefix of pending moves the
// cursor. It reports whether pid is an inbox packet id of this connection,
// which mochi must not see (see takeIDLocked).
func (c *conn) ack(pid uint16) (inboxID bool) {
	c.mu.Lock()
	inboxID = c.ownsIDLocked(pid)
	var l *lane
	for k := range c.lanes {
		if c.lanes[k].markAcked(pid) {
			l = &c.lanes[k]
			c.free = append(c.free, pid)
			atomic.AddInt64(&c.h.opts.Server.Info.Inflight, -1)
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
	n := 0
	for n < len(l.pending) && l.pending[n].acked {
		n++
	}
	// Refill at half a window, not at every ack: a pump then reads and
	// writes a batch, instead of one message per PUBACK while a backlog
	// drains.
	refill := n > 0 && len(l.pending)-n <= c.h.opts.Window/2
	if n > 0 {
		c.advanceLocked(l, l.pending[n-1].seq)
		l.pending = append(l.pending[:0], l.pending[n:]...)
		if c.inFlightLocked() == 0 {
			c.trimBlockLocked(blockIdle)
		}
	}
	c.mu.Unlock()
	c.h.opts.Events.Acked(1)
	// Room under the client's Receive Maximum goes to mochi's queued
	// publishes first, then wakes the pump itself.
	c.flow.release(1)
	if refill {
		c.wake()
	}
	return inboxID
}

// markAcked marks pid acknowledged if it is in l's pending, unacknowledged.
func (l *lane) markAcked(pid uint16) bool {
	for i := range l.pending {
		if l.pending[i].pid == pid && !l.pending[i].acked {
			l.pending[i].acked = true
			return true
		}
	}
	return false
}

// inFlightLocked counts the entries of every lane's pending. c.mu must be held.
func (c *conn) inFlightLocked() int {
	n := 0
	for k := range c.lanes {
		n += len(c.lanes[k].pending)
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
		c.h.pumps.Add(1) // Wait covers it, so the store outlives it
		go func() {
			defer c.h.pumps.Done()
			c.h.opts.Service.CancelPush(uid, seq)
		}()
	}
	if !c.persist && !c.marksAcked(l) {
		return // nothing to write
	}
	delay := cursorFlushDelay
	if l == &c.lanes[laneBroadcast] {
		delay = broadcastFlushDelay
	}
	// A sooner write covers every lane: the later timer then finds nothing.
	if !c.flushing || delay < c.flushIn {
		c.flushing, c.flushIn = true, delay
		time.AfterFunc(delay, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.flushLocked()
		})
	}
}

// marksAcked reports whether acks on l also move the user's messaging.AckedThread
// mark: with several devices of a user, the push fallback needs the
// highest inbox ack of any.
func (c *conn) marksAcked(l *lane) bool {
	return l == &c.lanes[laneInbox] && c.h.opts.Service.PushEnabled() && c.device != c.id.UID
}

// flushLocked writes the lanes' acknowledged positions. Writing under c.mu
// keeps writes in order and makes close() a barrier: once it returns, the
// next connection of the device reads the final cursors.
func (c *conn) flushLocked() {
	if !c.flushing {
		return
	}
	c.flushing = false
	ctx := context.Background()
	for k := range c.lanes {
		l := &c.lanes[k]
		if l.acked <= l.written {
			continue
		}
		seq := l.acked
		if c.persist {
			if err := c.h.opts.Store.SetCursor(ctx, c.id.UID, l.cursor, seq); err != nil {
				// Only costs duplicates on the next connection.
				c.h.opts.Log.Warn("cursor not saved", "uid", c.id.UID, "device", l.cursor, "seq", seq, "error", err)
			}
		}
		if c.marksAcked(l) {
			if err := c.h.opts.Store.MarkRead(ctx, c.id.UID, messaging.AckedThread, seq); err != nil {
				c.h.opts.Log.Warn("acked mark not saved", "uid", c.id.UID, "seq", seq, "error", err)
			}
		}
		l.written = seq
	}
}

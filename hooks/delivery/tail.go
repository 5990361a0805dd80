package delivery

import "github.com/inboxmq/inboxmq/inbox"

// A lane's tail: the just-appended messages a connection keeps for its
// pump, so a caught-up connection sends them without reading the log back.
// It is a gap-free run starting at the lane's next Seq, bounded by count
// and by weight; anything else is left to the log.

// tailMax and tailMaxBytes bound the messages a connection keeps in
// memory for its pump: by count, and by weight, so a client that never
// acknowledges large messages pins a bounded amount of memory (the log
// holds the rest).
const (
	tailMax      = 256
	tailMaxBytes = 256 << 10
)

// msgBytes is about what a message held in memory weighs.
func msgBytes(m *inbox.Message) int {
	return 96 + len(m.Content) + len(m.Extra) + len(m.Nickname) + len(m.Avatar) + len(m.CID) + len(m.Event) + len(m.Ref)
}

// setTailLocked replaces l's tail, keeping its weight in step. c.mu must be held.
func (l *lane) setTailLocked(tail []inbox.Message) {
	l.tail, l.tailBytes, l.tailFull = tail, 0, false
	for i := range tail {
		l.tailBytes += msgBytes(&tail[i])
	}
}

// offer hands a just-appended message to the connection, so a pump that is
// caught up sends it without reading the log back (the live path: no store
// read per delivery). Only a gap-free run starting at or after next is
// kept; anything else is left to the log.
func (c *conn) offer(lane int, m inbox.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := &c.lanes[lane]
	l.head = max(l.head, m.Seq)
	if !l.started || c.closed || m.Seq < l.next {
		return
	}
	if l.tailFull && len(l.tail) > 0 {
		return // the tail stays as it is; head was raised, so the pump reads the rest from the log
	}
	if n := len(l.tail); n > 0 && l.tail[n-1].Seq+1 != m.Seq {
		l.setTailLocked(l.tail[:0]) // a gap: the pump reads the log instead
	}
	if len(l.tail) == 0 && m.Seq != l.next {
		return
	}
	w := msgBytes(&m)
	if l.tailFull = len(l.tail) >= tailMax || l.tailBytes+w > tailMaxBytes; l.tailFull {
		return
	}
	l.tail = append(l.tail, m)
	l.tailBytes += w
}

// takeTailLocked returns up to room cached messages starting exactly at
// from, or nil when the cache does not start there. c.mu must be held.
func (l *lane) takeTailLocked(from uint64, room int) []inbox.Message {
	for len(l.tail) > 0 && l.tail[0].Seq < from {
		l.tailBytes -= msgBytes(&l.tail[0])
		l.tail = l.tail[1:]
	}
	if len(l.tail) == 0 || l.tail[0].Seq != from || room <= 0 {
		return nil
	}
	n := min(room, len(l.tail))
	out := append([]inbox.Message(nil), l.tail[:n]...)
	for i := range out {
		l.tailBytes -= msgBytes(&out[i])
	}
	l.tail = l.tail[n:]
	if len(l.tail) == 0 {
		l.setTailLocked(nil) // let the backing array go
	}
	return out
}

// keepAheadLocked makes messages read past the window's room the start of
// the tail. Offers that arrived during the read and continue them stay;
// the ones the read already covered go. A Seq missing inside ahead was
// missing from the log (deleted), so the run is still gap-free for
// delivery. c.mu must be held.
func (l *lane) keepAheadLocked(ahead []inbox.Message) {
	last := ahead[len(ahead)-1].Seq
	i := 0
	for i < len(l.tail) && l.tail[i].Seq <= last {
		i++
	}
	later := l.tail[i:]
	tail := make([]inbox.Message, 0, len(ahead)+len(later))
	weight := 0
	for k := range ahead {
		if weight += msgBytes(&ahead[k]); weight > tailMaxBytes && k > 0 {
			l.setTailLocked(tail) // the rest is read again from the log
			return
		}
		tail = append(tail, ahead[k])
	}
	if len(later) > 0 && later[0].Seq == last+1 && len(tail)+len(later) <= tailMax {
		tail = append(tail, later...)
	}
	l.setTailLocked(tail)
}

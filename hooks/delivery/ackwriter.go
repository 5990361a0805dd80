package delivery

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/messaging"
)

// ackWriter writes the acknowledged positions of all the node's
// connections together: every cursorFlushDelay, one batch for every
// connection that has something to write. With Redis that is one round
// trip for the cursors of all of them, which also takes their
// acknowledged messages off the push schedule (inbox.AckWriter,
// messaging.Service.PushesDone), instead of a round trip per connection
// and several per push check. A connection that closes writes its own
// final positions at once (conn.flush); every write moves positions
// forward only, so the two never undo each other.
//
// Its goroutine runs only while positions wait to be written, counted in
// the hook's pumps, so Hook.Wait covers it.
type ackWriter struct {
	store   inbox.Store
	service *messaging.Service
	log     *slog.Logger
	wg      *sync.WaitGroup

	mu      sync.Mutex
	due     map[*conn]time.Time // connections with positions to write, and when
	running bool                // the goroutine runs
	kick    chan struct{}       // an earlier due time was added
}

func newAckWriter(store inbox.Store, service *messaging.Service, log *slog.Logger, wg *sync.WaitGroup) *ackWriter {
	return &ackWriter{store: store, service: service, log: log, wg: wg,
		due: make(map[*conn]time.Time), kick: make(chan struct{}, 1)}
}

// schedule has c's positions written after delay (or sooner, if they
// already were to be).
func (w *ackWriter) schedule(c *conn, delay time.Duration) {
	at := time.Now().Add(delay)
	w.mu.Lock()
	if cur, ok := w.due[c]; !ok || at.Before(cur) {
		w.due[c] = at
	}
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if start {
		w.wg.Add(1)
		go w.run()
		return
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// hurry makes everything scheduled due now (the server is closing).
func (w *ackWriter) hurry() {
	w.mu.Lock()
	now := time.Now()
	for c := range w.due {
		w.due[c] = now
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// ackSlack is how early a scheduled write may go with others.
const ackSlack = cursorFlushDelay / 4

func (w *ackWriter) run() {
	defer w.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		w.mu.Lock()
		now := time.Now()
		// What falls due within ackSlack goes now too: one store write
		// for more connections, one wake instead of several. Writing a
		// position a few ms early costs nothing; the delay only gathers.
		soon := now.Add(ackSlack)
		var batch []*conn
		var next time.Time
		for c, at := range w.due {
			if !at.After(soon) {
				batch = append(batch, c)
				delete(w.due, c)
			} else if next.IsZero() || at.Before(next) {
				next = at
			}
		}
		if len(batch) == 0 && next.IsZero() {
			// Decided under the lock schedule takes: a later schedule
			// starts a new goroutine.
			w.running = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		if len(batch) > 0 {
			var todo []*acked
			for _, c := range batch {
				if a := c.takeAcked(); a != nil {
					todo = append(todo, a)
				}
			}
			w.write(todo)
			continue
		}
		timer.Reset(time.Until(next))
		select {
		case <-timer.C:
		case <-w.kick:
		}
	}
}

// acked is what one connection acknowledged since its positions were
// last written.
type acked struct {
	c   *conn
	pos []position
}

// position is one lane's acknowledged position to write.
type position struct {
	lane      int
	cursor    string
	from, seq uint64 // acknowledged from..seq since the last write
	save      bool   // the device's cursor (a persistent session)
	mark      bool   // also the user's AckedThread mark
}

// write stores the positions of todo: the cursors and the push checks
// they settle in one call when the store offers it (inbox.AckWriter),
// else one SetCursor per device; the AckedThread marks (multi-device mode)
// one by one. Failures only cost duplicates on a device's next
// connection, or a push check that finds its message acknowledged, so
// they are logged.
func (w *ackWriter) write(todo []*acked) {
	if len(todo) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var cursors []inbox.CursorPos
	var ranges []inbox.PushRange
	for _, a := range todo {
		uid := a.c.id.UID
		for _, p := range a.pos {
			if p.save {
				cursors = append(cursors, inbox.CursorPos{UID: uid, Device: p.cursor, Seq: p.seq})
			}
			if p.mark {
				if err := w.store.MarkRead(ctx, uid, messaging.AckedThread, p.seq); err != nil {
					w.log.Warn("acked mark not saved", "uid", uid, "seq", p.seq, "error", err)
				}
			}
			if p.lane == laneInbox {
				ranges = append(ranges, inbox.PushRange{UID: uid, From: p.from, To: p.seq})
			}
		}
	}
	if b, ok := w.store.(inbox.AckWriter); ok {
		if err := b.WriteAcks(ctx, cursors, w.service.PushesDone(ranges)); err != nil {
			w.log.Warn("cursors not saved", "devices", len(cursors), "error", err)
		}
	} else {
		for _, c := range cursors {
			if err := w.store.SetCursor(ctx, c.UID, c.Device, c.Seq); err != nil {
				w.log.Warn("cursor not saved", "uid", c.UID, "device", c.Device, "seq", c.Seq, "error", err)
			}
		}
	}
	for _, a := range todo {
		a.c.wrote(a.pos)
	}
}

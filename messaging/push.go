package messaging

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/inboxmq/inboxmq/events"
	"github.com/inboxmq/inboxmq/inbox"
)

// The push fallback: an incoming message (direct or notice) that no device
// of its recipient has acknowledged push.after after it was stored yields
// one "push" event for the back-end, which talks to APNs/FCM. It is
// derived from the log, not from timers alone: every incoming entry is put
// on the store's durable push schedule, so a due push survives a restart,
// and nodes sharing a store split the schedule between them. The entry is
// written in the same atomic step as the message.

// AckedThread names the read mark that records, in multi-device mode, the
// highest Seq any device of a user acknowledged. (In single-login mode the
// user's one cursor says the same.)
const AckedThread = "$acked"

// PushedThread and PushCancelledThread name the read marks that record the
// highest Seq a push event was emitted for, and the highest one a
// push_cancel event was emitted for: a device that acknowledges past the
// first while it is above the second clears the notification.
const (
	PushedThread        = "$pushed"
	PushCancelledThread = "$pushcancel"
)

// PushOptions configure the push fallback.
type PushOptions struct {
	After    time.Duration // 0 disables push events
	Interval time.Duration // how often due pushes are checked
}

// pushScheduler runs the due checks. The schedule itself is written by
// the store with each message (inbox.Request.PushAfter), so no stored
// message misses its check, whatever fails after it was stored.
type pushScheduler struct {
	s    *Service
	opts PushOptions // After > 0, Interval > 0
	stop chan struct{}
	done sync.WaitGroup
}

func newPushScheduler(s *Service, opts PushOptions) *pushScheduler {
	p := &pushScheduler{s: s, opts: opts, stop: make(chan struct{})}
	p.done.Add(1)
	go p.checkLoop()
	return p
}

// close stops the checks and waits for the one in progress.
func (p *pushScheduler) close() {
	close(p.stop)
	p.done.Wait()
}

// checkLoop claims due entries and emits push events for unacknowledged ones.
func (p *pushScheduler) checkLoop() {
	defer p.done.Done()
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.checkDue()
		}
	}
}

// pushLease is how long a claimed push check is the claimer's: if the
// check fails, or its node dies, the entry is checked again after it.
const pushLease = 30 * time.Second

func (p *pushScheduler) checkDue() {
	h := p.s
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		due, err := h.opts.Store.ClaimDuePushes(ctx, time.Now(), pushLease, 500)
		cancel()
		if err != nil {
			h.opts.Log.Error("push schedule not readable", "error", err)
			return
		}
		done := make([]inbox.PushEntry, 0, len(due))
		for _, e := range due {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := h.checkPush(ctx, e)
			cancel()
			if err != nil {
				h.opts.Log.Error("push check failed; checked again later", "uid", e.UID, "seq", e.Seq,
					"retry_in", pushLease, "error", err)
				continue
			}
			done = append(done, e)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		if err := h.opts.Store.DonePushes(ctx, done); err != nil {
			// Checked again after the lease: the event goes out under
			// the same id, which replaces or repeats it, never adds one.
			h.opts.Log.Warn("push checks not recorded as done; checked again later", "entries", len(done), "error", err)
		}
		cancel()
		if len(due) < 500 {
			return
		}
	}
}

// storedEmitter is an Emitter that can store an event before returning
// (*events.Outbox): a push check is done only once its event is stored.
type storedEmitter interface {
	EmitStored(ctx context.Context, e events.Event) error
}

// pushEventID is the delivery id of the push event of message seq of
// uid: the same for every check of it, so a check repeated after a
// failure replaces or repeats the event instead of adding one.
func pushEventID(uid string, seq uint64) string {
	sum := sha256.Sum256([]byte("push\x00" + uid + "\x00" + strconv.FormatUint(seq, 10)))
	return hex.EncodeToString(sum[:16])
}

// checkPush emits the push event for e unless a device acknowledged it or
// it was deleted meanwhile.
func (h *Service) checkPush(ctx context.Context, e inbox.PushEntry) error {
	acked, err := h.ackedUpTo(ctx, e.UID)
	if err != nil {
		return err
	}
	if acked >= e.Seq {
		return nil
	}
	msgs, err := h.opts.Store.Read(ctx, e.UID, e.Seq, 1)
	if err != nil {
		return err
	}
	if len(msgs) == 0 || msgs[0].Seq != e.Seq {
		return nil // deleted or expired
	}
	m := msgs[0]
	unread, err := h.opts.Store.Unread(ctx, e.UID)
	if err != nil {
		return err
	}
	// The mark first: the event's synced store write then also makes the
	// (unsynced) mark durable, so a push_cancel can always follow it.
	if err := h.opts.Store.MarkRead(ctx, e.UID, PushedThread, e.Seq); err != nil {
		h.opts.Log.Warn("push not recorded: no push_cancel will follow it", "uid", e.UID, "seq", e.Seq, "error", err)
	}
	ev := events.Event{ID: pushEventID(e.UID, e.Seq), Type: events.TypePush, Data: map[string]any{
		"uid":      e.UID,
		"msgid":    m.ID,
		"from":     m.Peer,
		"nickname": m.Nickname,
		"preview":  preview(m.Content, 60),
		"unread":   unread.Total,
	}}
	if se, ok := h.opts.Emitter.(storedEmitter); ok {
		if err := se.EmitStored(ctx, ev); err != nil {
			return err
		}
	} else {
		h.opts.Emitter.Emit(ev)
	}
	h.opts.Metrics.Pushed()
	if d := h.delivery(); d != nil {
		d.Pushed(e.UID, e.Seq)
	}
	return nil
}

// maxCancelRange is the widest acknowledged range whose push checks
// PushesDone lets go: a wider one (a device catching up on a long
// backlog) is left to the checks, which find it acknowledged.
const maxCancelRange = 1024

// PushesDone returns, of the ranges of messages devices acknowledged,
// those whose push checks the store may drop now (inbox.AckWriter): with
// push events on, each would otherwise cost a claim, two reads and a
// removal when it came due, to find the message acknowledged. Nil when
// push events are off.
func (h *Service) PushesDone(acked []inbox.PushRange) []inbox.PushRange {
	if !h.PushEnabled() {
		return nil
	}
	var out []inbox.PushRange
	for _, r := range acked {
		if r.To >= r.From && r.To-r.From < maxCancelRange && r.UID != "" && r.UID[0] != '$' {
			out = append(out, r)
		}
	}
	return out
}

// CancelPush emits push_cancel for uid: a device acknowledged the messages
// up to seq, the highest a push event was emitted for, so the back-end
// clears the notification and sets the badge to the unread total.
func (h *Service) CancelPush(uid string, seq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.opts.Store.MarkRead(ctx, uid, PushCancelledThread, seq); err != nil {
		h.opts.Log.Warn("push_cancel not recorded; it may be sent again", "uid", uid, "seq", seq, "error", err)
	}
	data := map[string]any{"uid": uid}
	if msgs, err := h.opts.Store.Read(ctx, uid, seq, 1); err == nil && len(msgs) > 0 && msgs[0].Seq == seq {
		data["msgid"] = msgs[0].ID
	}
	if unread, err := h.opts.Store.Unread(ctx, uid); err == nil {
		data["unread"] = unread.Total
	} else {
		h.opts.Log.Warn("push_cancel without an unread total", "uid", uid, "error", err)
	}
	h.opts.Emitter.Emit(events.Event{Type: events.TypePushCancel, Data: data})
}

// ackedUpTo is the highest Seq of uid's inbox some device acknowledged:
// the user's shared cursor in single-login mode, the AckedThread mark of
// devices with their own cursors (multi-device mode, static accounts).
func (h *Service) ackedUpTo(ctx context.Context, uid string) (uint64, error) {
	mark, err := h.opts.Store.ReadMark(ctx, uid, AckedThread)
	if err != nil || !h.opts.SingleLogin {
		return mark, err
	}
	seq, _, err := h.opts.Store.Cursor(ctx, uid, uid)
	return max(seq, mark), err
}

// preview is the first n characters of s, on a rune boundary.
func preview(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for k := range s {
		if i == n {
			return s[:k] + "…"
		}
		i++
	}
	return s
}

package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
)

// OutboxStore is where events wait for their sinks; inbox.Store implements it.
type OutboxStore interface {
	EnqueueEvents(ctx context.Context, entries []inbox.OutboxEntry) error
	ClaimDueEvents(ctx context.Context, sink string, now time.Time, lease time.Duration, limit int) ([]inbox.OutboxEntry, error)
	RescheduleEvent(ctx context.Context, e inbox.OutboxEntry) error
	DeleteEvents(ctx context.Context, sink string, ids []string) error
	OutboxLen(ctx context.Context, sink string) (int, error)
}

// Outbox defaults.
const (
	DefaultMaxAge        = 24 * time.Hour
	DefaultRetryMin      = time.Second
	DefaultRetryMax      = 5 * time.Minute
	DefaultPollInterval  = time.Second
	DefaultLease         = 30 * time.Second
	DefaultOutboxBuffer  = 10000
	outboxClaimBatch     = 64
	outboxStoreTimeout   = 5 * time.Second
	outboxStoreRetryWait = 500 * time.Millisecond
)

// OutboxOptions configure an Outbox.
type OutboxOptions struct {
	Store OutboxStore // required
	// Sinks receive every event (that they want, see Filter). Names must
	// be unique and stable across restarts: they key the stored entries.
	Sinks []Sink
	// MaxAge is how long an event is tried; an older one is given up,
	// logged and counted, never sent. DefaultMaxAge when 0.
	MaxAge time.Duration
	// RetryMin and RetryMax bound the backoff between attempts: it doubles
	// from RetryMin up to RetryMax, with jitter.
	RetryMin, RetryMax time.Duration
	// PollInterval is how often each sink looks for due events (also
	// those other nodes left, or that a restart found).
	PollInterval time.Duration
	// Lease is how long a claimed event is withheld from other claimers;
	// a node that dies while sending leaves it due again after this.
	Lease time.Duration
	// Buffer bounds the events waiting in memory for the store (while it
	// is unreachable); beyond it new events are dropped and counted.
	Buffer int
	Log    *slog.Logger
	// OnDrop, OnRetry and OnGiveUp count per sink: an event dropped before
	// it was stored, a failed attempt that will be retried, an event given
	// up at MaxAge. Quick and safe for concurrent use (metrics).
	OnDrop, OnRetry, OnGiveUp func(sink string)
}

// Outbox delivers events at least once: Emit stores each event, per sink,
// in the store (batched, synced) and sink workers deliver what is due,
// deleting an event only once its sink took it. A failed attempt is
// retried with capped exponential backoff until MaxAge, across restarts,
// and by any node sharing the store. Every attempt carries the same
// delivery id (Event.ID). Emit never blocks.
type Outbox struct {
	o       OutboxOptions
	log     *slog.Logger
	workers []*outboxWorker

	mu      sync.Mutex
	pending []inbox.OutboxEntry // emitted, not yet stored; guarded by mu
	closed  bool                // guarded by mu

	kick    chan struct{} // wakes the writer
	stop    chan struct{} // closed by Close
	sendCtx context.Context
	cancel  context.CancelFunc
	writer  sync.WaitGroup
	wg      sync.WaitGroup
	invalid atomic.Uint64
	dropped atomic.Uint64
}

type outboxWorker struct {
	sink                 Sink
	name                 string
	filter               Filter
	kick                 chan struct{}
	sent, retried, given atomic.Uint64
	// pausedUntil: after a failed attempt the worker tries nothing more
	// before that attempt's retry is due. Only the worker's goroutine uses it.
	pausedUntil time.Time
}

// NewOutbox starts the writer and one worker per sink; Close stops them.
func NewOutbox(o OutboxOptions) (*Outbox, error) {
	if o.Store == nil {
		return nil, errors.New("events: outbox needs a Store")
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.RetryMin <= 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(o.RetryMin, DefaultRetryMax)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultOutboxBuffer
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Outbox{o: o, log: o.Log, kick: make(chan struct{}, 1), stop: make(chan struct{}), sendCtx: ctx, cancel: cancel}
	seen := map[string]bool{}
	for i, s := range o.Sinks {
		if s == nil {
			cancel()
			return nil, fmt.Errorf("events: outbox sink %d is nil", i)
		}
		if seen[s.Name()] {
			cancel()
			return nil, fmt.Errorf("events: two sinks named %q", s.Name())
		}
		seen[s.Name()] = true
		w := &outboxWorker{sink: s, name: s.Name(), kick: make(chan struct{}, 1)}
		w.filter, _ = s.(Filter)
		b.workers = append(b.workers, w)
	}
	b.writer.Add(1)
	go b.writeLoop()
	b.wg.Add(len(b.workers))
	for _, w := range b.workers {
		go b.run(w)
	}
	return b, nil
}

// prepare completes e (a zero Time is now, an empty ID a new delivery
// id) and encodes it; ok is false, after counting and logging, when e
// cannot be sent.
func (b *Outbox) prepare(e *Event) (body []byte, ok bool) {
	if err := e.Validate(); err != nil {
		b.invalid.Add(1)
		b.log.Warn("events: invalid event not sent", "type", e.Type, "error", err)
		return nil, false
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = time.UnixMilli(e.Time.UnixMilli())
	if e.ID == "" {
		e.ID = newDeliveryID()
	}
	body, err := e.MarshalJSON()
	if err != nil {
		b.invalid.Add(1)
		b.log.Warn("events: event not encodable, not sent", "type", e.Type, "error", err)
		return nil, false
	}
	return body, true
}

// EmitStored stores e for every sink that wants it before it returns, so
// that the caller may forget what e reports. An e stored again under the
// same ID replaces the waiting one (or, once delivered, is delivered again
// under that id, which receivers de-duplicate). It returns an error when
// the store failed; an invalid event is logged and dropped (nil error).
func (b *Outbox) EmitStored(ctx context.Context, e Event) error {
	body, ok := b.prepare(&e)
	if !ok {
		return nil
	}
	now := time.UnixMilli(time.Now().UnixMilli())
	var entries []inbox.OutboxEntry
	for _, w := range b.workers {
		if w.filter == nil || w.filter.Wants(e.Type) {
			entries = append(entries, inbox.OutboxEntry{Sink: w.name, ID: e.ID, Type: e.Type, Body: body, Created: now, Due: now})
		}
	}
	if err := b.o.Store.EnqueueEvents(ctx, entries); err != nil {
		return fmt.Errorf("events: store %s: %w", e.Type, err)
	}
	for _, w := range b.workers {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Emit stores e for every sink that wants it, off the caller's path. A
// zero e.Time is set to now and an empty e.ID to a new delivery id.
func (b *Outbox) Emit(e Event) {
	body, ok := b.prepare(&e)
	if !ok {
		return
	}
	// Age counts from now, whatever time the event says it happened at.
	now := time.UnixMilli(time.Now().UnixMilli())
	var drops []string
	b.mu.Lock()
	for _, w := range b.workers {
		if w.filter != nil && !w.filter.Wants(e.Type) {
			continue
		}
		if b.closed || len(b.pending) >= b.o.Buffer {
			drops = append(drops, w.name)
			continue
		}
		b.pending = append(b.pending, inbox.OutboxEntry{
			Sink: w.name, ID: e.ID, Type: e.Type, Body: body, Created: now, Due: now,
		})
	}
	b.mu.Unlock()
	for _, name := range drops {
		b.dropped.Add(1)
		if b.o.OnDrop != nil {
			b.o.OnDrop(name)
		}
		b.log.Warn("events: event dropped before it was stored", "sink", name, "type", e.Type, "id", e.ID)
	}
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// writeLoop stores what Emit collected, in batches, retrying while the
// store is unreachable, and wakes the workers.
func (b *Outbox) writeLoop() {
	defer b.writer.Done()
	for {
		select {
		case <-b.kick:
		case <-b.stop:
			b.flush(b.sendCtx)
			return
		}
		b.flush(b.sendCtx)
	}
}

// flush stores the pending entries; it gives up only when ctx ends.
func (b *Outbox) flush(ctx context.Context) {
	for {
		b.mu.Lock()
		batch := b.pending
		b.pending = nil
		b.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		for {
			sctx, cancel := context.WithTimeout(ctx, outboxStoreTimeout)
			err := b.o.Store.EnqueueEvents(sctx, batch)
			cancel()
			if err == nil {
				break
			}
			b.log.Error("events: not stored yet; retrying", "events", len(batch), "error", err)
			select {
			case <-ctx.Done():
				b.log.Error("events: lost at shutdown: the store was unreachable", "events", len(batch))
				return
			case <-time.After(outboxStoreRetryWait):
			}
		}
		for _, w := range b.workers {
			select {
			case w.kick <- struct{}{}:
			default:
			}
		}
	}
}

// run is a sink's worker: it delivers what is due, at every kick and poll.
func (b *Outbox) run(w *outboxWorker) {
	defer b.wg.Done()
	t := time.NewTicker(b.o.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-w.kick:
		case <-t.C:
		}
		if time.Now().Before(w.pausedUntil) {
			continue // the sink failed: its next probe is not due yet
		}
		for b.deliverDue(w) {
		}
	}
}

// deliverDue delivers what is due: the earliest event alone first, as a
// probe, and only when it went through, the next batch. So while a
// receiver is down only the probe is leased, and a crash then delays no
// other event by a lease. It reports whether there may be more.
func (b *Outbox) deliverDue(w *outboxWorker) bool {
	sent, more := b.deliverClaimed(w, 1)
	if !sent || !more {
		return false
	}
	_, more = b.deliverClaimed(w, outboxClaimBatch)
	return more
}

// deliverClaimed claims up to limit due events and delivers them. It
// reports whether all that were claimed went through (or were given up),
// and whether a full batch was claimed.
func (b *Outbox) deliverClaimed(w *outboxWorker, limit int) (ok, full bool) {
	ctx, cancel := context.WithTimeout(b.sendCtx, outboxStoreTimeout)
	now := time.Now()
	claimed, err := b.o.Store.ClaimDueEvents(ctx, w.name, now, b.o.Lease, limit)
	cancel()
	if err != nil {
		if b.sendCtx.Err() == nil {
			b.log.Error("events: outbox not readable", "sink", w.name, "error", err)
		}
		return false, false
	}
	var fresh []inbox.OutboxEntry
	var old []string
	for _, e := range claimed {
		if now.Sub(e.Created) > b.o.MaxAge {
			old = append(old, e.ID)
			continue
		}
		fresh = append(fresh, e)
	}
	if len(old) > 0 {
		b.giveUp(w, old, "older than events.max_age")
	}
	ok = b.deliver(w, fresh)
	return ok, len(claimed) == limit && b.sendCtx.Err() == nil
}

func entryEvent(e inbox.OutboxEntry) Event {
	return Event{Type: e.Type, Time: e.Created, ID: e.ID, raw: e.Body}
}

// deliver sends claimed entries in order. The first that fails is retried
// later with backoff; the ones after it are put back to be tried with it,
// so a receiver that is down gets one attempt per backoff interval, not
// one per waiting event.
func (b *Outbox) deliver(w *outboxWorker, entries []inbox.OutboxEntry) (ok bool) {
	if len(entries) == 0 {
		return true
	}
	batch := make([]Event, len(entries))
	for i, e := range entries {
		batch[i] = entryEvent(e)
	}
	// The first event alone probes the sink; if it went through, the rest
	// go as one batch (one pipeline to Redis). Should that fail, each is
	// tried alone, so only the failed ones are kept (one delivered in the
	// failed batch may come twice: at least once).
	if err := w.sink.Send(b.sendCtx, batch[:1]); err != nil {
		if next := b.retry(w, entries[0], err); !next.IsZero() {
			b.putBack(w, entries[1:], next)
			return false
		}
	} else {
		b.delivered(w, entries[:1])
	}
	entries, batch = entries[1:], batch[1:]
	if len(batch) > 1 && w.sink.Send(b.sendCtx, batch) == nil {
		b.delivered(w, entries)
		return true
	}
	for i, e := range entries {
		if b.sendCtx.Err() != nil {
			b.putBack(w, entries[i:], time.Now())
			return false
		}
		err := w.sink.Send(b.sendCtx, batch[i:i+1])
		if err == nil {
			b.delivered(w, entries[i:i+1])
			continue
		}
		if next := b.retry(w, e, err); !next.IsZero() {
			b.putBack(w, entries[i+1:], next)
			return false
		}
		// Given up: the next one gets its own try.
	}
	return true
}

func (b *Outbox) delivered(w *outboxWorker, entries []inbox.OutboxEntry) {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	ctx, cancel := context.WithTimeout(context.Background(), outboxStoreTimeout)
	defer cancel()
	if err := b.o.Store.DeleteEvents(ctx, w.name, ids); err != nil {
		// They stay leased and come again after the lease: at least once.
		b.log.Warn("events: delivered events not removed; they may be sent again", "sink", w.name, "events", len(ids), "error", err)
	}
	w.sent.Add(uint64(len(ids)))
}

// retry counts a failed attempt of e and schedules the next one, or gives
// e up when the next would come after its maximum age. It returns the next
// attempt's time, zero when given up.
func (b *Outbox) retry(w *outboxWorker, e inbox.OutboxEntry, cause error) time.Time {
	e.Attempt++
	now := time.Now()
	next := now.Add(b.backoff(e.Attempt))
	if next.Sub(e.Created) > b.o.MaxAge {
		b.giveUp(w, []string{e.ID}, fmt.Sprintf("still failing after %d attempts: %v", e.Attempt, cause))
		return time.Time{}
	}
	w.retried.Add(1)
	if b.o.OnRetry != nil {
		b.o.OnRetry(w.name)
	}
	b.log.Warn("events: delivery failed; will retry", "sink", w.name, "type", e.Type, "id", e.ID,
		"attempt", e.Attempt, "next", next.Sub(now).Round(time.Millisecond), "error", cause)
	e.Due = next
	b.reschedule(w, e)
	w.pausedUntil = next
	return next
}

// putBack makes untried entries due at t, keeping their attempt counts.
func (b *Outbox) putBack(w *outboxWorker, entries []inbox.OutboxEntry, t time.Time) {
	for _, e := range entries {
		e.Due = t
		b.reschedule(w, e)
	}
}

func (b *Outbox) reschedule(w *outboxWorker, e inbox.OutboxEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), outboxStoreTimeout)
	defer cancel()
	if err := b.o.Store.RescheduleEvent(ctx, e); err != nil {
		// It stays leased, due again when the lease ends.
		b.log.Warn("events: retry not scheduled; due again after the lease", "sink", w.name, "id", e.ID, "error", err)
	}
}

func (b *Outbox) giveUp(w *outboxWorker, ids []string, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), outboxStoreTimeout)
	defer cancel()
	if err := b.o.Store.DeleteEvents(ctx, w.name, ids); err != nil {
		b.log.Warn("events: given-up events not removed", "sink", w.name, "error", err)
	}
	w.given.Add(uint64(len(ids)))
	for range ids {
		if b.o.OnGiveUp != nil {
			b.o.OnGiveUp(w.name)
		}
	}
	b.log.Error("events: given up", "sink", w.name, "events", len(ids), "ids", ids, "reason", why)
}

// backoff is the wait before attempt+1: RetryMin doubling up to RetryMax,
// the upper half jittered so nodes do not retry in step.
func (b *Outbox) backoff(attempt int) time.Duration {
	d := b.o.RetryMax
	if attempt <= 30 {
		d = min(b.o.RetryMin<<(attempt-1), b.o.RetryMax)
	}
	return d/2 + mrand.N(d/2+1)
}

// Close stores what was emitted and stops the workers. An attempt in
// progress may finish until ctx ends; then it is cancelled, and its events
// stay in the store, due again after their lease.
func (b *Outbox) Close(ctx context.Context) error {
	b.mu.Lock()
	already := b.closed
	b.closed = true
	b.mu.Unlock()
	if !already {
		close(b.stop)
	}
	done := make(chan struct{})
	go func() {
		b.writer.Wait()
		b.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("events: close: %w", ctx.Err())
		b.cancel()
		<-done
	}
	b.cancel()
	// Sinks that hold connections (the webhook's keep-alive pool) let go
	// of them once no worker uses them.
	for _, w := range b.workers {
		if c, ok := w.sink.(interface{ Close() }); ok {
			c.Close()
		}
	}
	return err
}

// OutboxStats are an Outbox's counters since it started.
type OutboxStats struct {
	Invalid, Dropped uint64 // refused by Emit; dropped before they were stored
	Sinks            []OutboxSinkStats
}

// OutboxSinkStats count one sink's deliveries.
type OutboxSinkStats struct {
	Name                   string
	Sent, Retried, GivenUp uint64
}

// Stats returns the counters.
func (b *Outbox) Stats() OutboxStats {
	s := OutboxStats{Invalid: b.invalid.Load(), Dropped: b.dropped.Load()}
	for _, w := range b.workers {
		s.Sinks = append(s.Sinks, OutboxSinkStats{Name: w.name, Sent: w.sent.Load(), Retried: w.retried.Load(), GivenUp: w.given.Load()})
	}
	return s
}

// Backlog returns how many events wait in the store for each sink.
func (b *Outbox) Backlog(ctx context.Context) (map[string]int, error) {
	out := make(map[string]int, len(b.workers))
	for _, w := range b.workers {
		n, err := b.o.Store.OutboxLen(ctx, w.name)
		if err != nil {
			return out, err
		}
		out[w.name] = n
	}
	return out, nil
}

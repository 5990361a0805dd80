package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Sink delivers events somewhere. The Dispatcher calls Send from one
// worker goroutine per sink, never concurrently with itself; Send must not
// keep batch (its backing array is reused) and must return soon after ctx
// ends, which is how Dispatcher.Close stops a slow sink.
//
// A nil error means every event was delivered. A Send that delivered part
// of a batch returns a *SendError saying how many failed; any other error
// counts the whole batch as failed. The Dispatcher does not retry: a sink
// that wants retries does them inside Send.
type Sink interface {
	Name() string
	Send(ctx context.Context, batch []Event) error
}

// Filter is an optional extra of a Sink: the Dispatcher queues for a sink
// that implements it only the events whose type it wants, so ignored
// events take no queue space and are not counted.
type Filter interface {
	Wants(eventType string) bool
}

// SendError is returned by a Sink that failed to deliver Failed events of
// a batch (and delivered the rest).
type SendError struct {
	Failed int
	Err    error // why; for many failures, the first few reasons
}

func (e *SendError) Error() string {
	return fmt.Sprintf("events: %d event(s) not delivered: %v", e.Failed, e.Err)
}

func (e *SendError) Unwrap() error { return e.Err }

const (
	// DefaultQueue is DispatcherOptions.Queue when it is 0 or less.
	DefaultQueue = 1024
	// maxBatch bounds how many queued events one Send carries.
	maxBatch = 64
	// dropLogEvery spaces "queue full" log lines of one sink: under
	// overload Emit is called far more often than anyone wants to read.
	dropLogEvery = time.Second
)

// DispatcherOptions configure a Dispatcher.
type DispatcherOptions struct {
	// Sinks receive every valid event (that they want, see Filter). Names
	// should be unique: they label Stats and the callbacks.
	Sinks []Sink
	// Queue is how many events may wait for each sink; DefaultQueue when 0
	// or less. Beyond it, events for that sink are dropped.
	Queue int
	// Log gets failures and (at most once a second per sink) drops;
	// slog.Default() when nil.
	Log *slog.Logger
	// OnDrop, if set, is called once per event dropped for a sink: its
	// queue was full, the Dispatcher was closed, or Close gave up. It is
	// called from Emit and from worker goroutines: it must be quick and
	// safe for concurrent use (a metrics counter).
	OnDrop func(sink string)
	// OnFailure, if set, is called once per event a sink failed to
	// deliver, from that sink's worker goroutine; quick, as OnDrop.
	OnFailure func(sink string)
}

// Dispatcher queues events and delivers them to every sink, each from its
// own worker goroutine with its own bounded queue, so that a slow webhook
// holds back neither the caller nor the other sinks. Delivery is best
// effort: events live in memory only, and an event a sink fails to deliver
// is counted and logged, not kept.
type Dispatcher struct {
	log       *slog.Logger
	onDrop    func(string)
	onFailure func(string)
	workers   []*worker
	invalid   atomic.Uint64

	// mu orders Emit's sends on the queues before Close closes them.
	mu     sync.RWMutex
	closed bool // guarded by mu

	sendCtx   context.Context // ends when Close gives up waiting
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	done      chan struct{} // closed when every worker has returned
	closeOnce sync.Once
}

// worker is one sink with its queue and counters.
type worker struct {
	sink    Sink
	name    string
	filter  Filter // nil: every event
	q       chan Event
	sent    atomic.Uint64
	failed  atomic.Uint64
	dropped atomic.Uint64
	lastLog atomic.Int64 // UnixNano of the last "queue full" log line
}

// NewDispatcher starts one worker goroutine per sink. Close stops them.
// It panics if a sink is nil.
func NewDispatcher(o DispatcherOptions) *Dispatcher {
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{
		log:       o.Log,
		onDrop:    o.OnDrop,
		onFailure: o.OnFailure,
		sendCtx:   ctx,
		cancel:    cancel,
		done:      make(chan struct{}),
	}
	for i, s := range o.Sinks {
		if s == nil {
			panic(fmt.Sprintf("events: NewDispatcher: sink %d is nil", i))
		}
		w := &worker{sink: s, name: s.Name(), q: make(chan Event, o.Queue)}
		w.filter, _ = s.(Filter)
		d.workers = append(d.workers, w)
	}
	d.wg.Add(len(d.workers))
	for _, w := range d.workers {
		go d.run(w)
	}
	go func() {
		d.wg.Wait()
		close(d.done)
	}()
	return d
}

// Emit queues e for every sink that wants it and returns at once: for a
// sink whose queue is full, or after Close, e is dropped and counted. An
// invalid e (see Event.Validate) is counted in Stats.Invalid and logged.
// A zero e.Time is set to now. e.Data is shared with the sinks: do not
// change it afterwards. Emit is safe for concurrent use.
func (d *Dispatcher) Emit(e Event) {
	if err := e.Validate(); err != nil {
		d.invalid.Add(1)
		d.log.Warn("events: invalid event not sent", "type", e.Type, "error", err)
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	// Drops are collected and reported after the lock is released, so
	// OnDrop may call back into the Dispatcher (even Close).
	var buf [4]*worker
	dropped := buf[:0]
	d.mu.RLock()
	for _, w := range d.workers {
		if w.filter != nil && !w.filter.Wants(e.Type) {
			continue
		}
		if d.closed {
			dropped = append(dropped, w)
			continue
		}
		select {
		case w.q <- e:
		default:
			dropped = append(dropped, w)
		}
	}
	closed := d.closed
	d.mu.RUnlock()
	for _, w := range dropped {
		d.drop(w, 1, closed)
	}
}

// drop counts n events dropped for w and logs it, at most once per
// dropLogEvery per sink.
func (d *Dispatcher) drop(w *worker, n int, closed bool) {
	total := w.dropped.Add(uint64(n))
	if d.onDrop != nil {
		for range n {
			d.onDrop(w.name)
		}
	}
	now := time.Now().UnixNano()
	last := w.lastLog.Load()
	if now-last < int64(dropLogEvery) || !w.lastLog.CompareAndSwap(last, now) {
		return
	}
	reason := "queue full"
	if closed {
		reason = "dispatcher closed"
	}
	d.log.Warn("events: events dropped", "sink", w.name, "reason", reason, "dropped_total", total)
}

// run is a sink's worker: it sends what is queued, in batches of what
// has piled up, until Close closes the queue and it is empty.
func (d *Dispatcher) run(w *worker) {
	defer d.wg.Done()
	batch := make([]Event, 0, maxBatch)
	for e := range w.q {
		batch = append(batch[:0], e)
	fill:
		for len(batch) < maxBatch {
			select {
			case e, ok := <-w.q:
				if !ok {
					break fill
				}
				batch = append(batch, e)
			default:
				break fill
			}
		}
		d.deliver(w, batch)
		clear(batch) // let the Data maps go
	}
}

func (d *Dispatcher) deliver(w *worker, batch []Event) {
	if d.sendCtx.Err() != nil {
		// Close gave up: what is left is dropped, not tried.
		d.drop(w, len(batch), true)
		return
	}
	err := w.sink.Send(d.sendCtx, batch)
	if err == nil {
		w.sent.Add(uint64(len(batch)))
		return
	}
	failed := len(batch)
	var se *SendError
	if errors.As(err, &se) && se.Failed >= 0 && se.Failed <= len(batch) {
		failed = se.Failed
	}
	w.sent.Add(uint64(len(batch) - failed))
	w.failed.Add(uint64(failed))
	if d.onFailure != nil {
		for range failed {
			d.onFailure(w.name)
		}
	}
	d.log.Warn("events: sink failed", "sink", w.name, "events", len(batch), "failed", failed, "error", err)
}

// Close stops accepting events and waits until every sink has been sent
// what was queued, or until ctx ends: then in-flight sends are cancelled
// (their events count as failed), what is still queued is counted as
// dropped, and Close returns an error wrapping ctx's once the workers have
// returned. Close may be called again; once the workers are done it
// returns nil.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		for _, w := range d.workers {
			close(w.q)
		}
		d.mu.Unlock()
	})
	defer d.cancel()
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		d.cancel()
		<-d.done
		return fmt.Errorf("events: close: undelivered events dropped: %w", ctx.Err())
	}
}

// Stats are a Dispatcher's counters since it started.
type Stats struct {
	Invalid uint64      // events refused by Emit (Event.Validate)
	Sinks   []SinkStats // in the order of DispatcherOptions.Sinks
}

// SinkStats count one sink's events. Every event queued for a sink ends as
// exactly one of Sent, Failed or Dropped (a drop after queueing happens
// only when Close gives up); Queued is what waits now.
type SinkStats struct {
	Name    string
	Queued  int
	Sent    uint64
	Failed  uint64
	Dropped uint64
}

// Stats returns the counters. It is safe for concurrent use.
func (d *Dispatcher) Stats() Stats {
	s := Stats{Invalid: d.invalid.Load(), Sinks: make([]SinkStats, len(d.workers))}
	for i, w := range d.workers {
		s.Sinks[i] = SinkStats{
			Name:    w.name,
			Queued:  len(w.q),
			Sent:    w.sent.Load(),
			Failed:  w.failed.Load(),
			Dropped: w.dropped.Load(),
		}
	}
	return s
}

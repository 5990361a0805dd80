package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func closeDispatcher(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestDispatcherDeliversToEverySinkInOrder(t *testing.T) {
	a, b := &memSink{name: "a"}, &memSink{name: "b"}
	d := NewDispatcher(DispatcherOptions{Sinks: []Sink{a, b}, Log: quiet()})
	const n = 500
	for i := range n {
		d.Emit(pushEvent(i))
	}
	closeDispatcher(t, d)
	for _, s := range []*memSink{a, b} {
		got := s.got()
		if len(got) != n {
			t.Fatalf("sink %s got %d events, want %d", s.name, len(got), n)
		}
		for i, e := range got {
			if e.Data["unread"] != i {
				t.Fatalf("sink %s: event %d is %v, want in emit order", s.name, i, e.Data["unread"])
			}
		}
		if st := sinkStats(t, d, s.name); st.Sent != n || st.Failed != 0 || st.Dropped != 0 || st.Queued != 0 {
			t.Errorf("stats %+v, want %d sent and nothing else", st, n)
		}
	}
}

func TestDispatcherStampsTime(t *testing.T) {
	s := &memSink{name: "m"}
	d := NewDispatcher(DispatcherOptions{Sinks: []Sink{s}, Log: quiet()})
	before := time.Now()
	d.Emit(Event{Type: TypeLogin})
	given := time.UnixMilli(42)
	d.Emit(Event{Type: TypeLogin, Time: given})
	closeDispatcher(t, d)
	got := s.got()
	if len(got) != 2 || got[0].Time.Before(before) || got[0].Time.After(time.Now()) || !got[1].Time.Equal(given) {
		t.Errorf("times %v, want now then %v", got, given)
	}
}

// A real HTTP receiver that does not answer holds the webhook's worker:
// Emit must go on returning at once, the queue must stay within its bound
// and every event beyond it must be counted as dropped.
func TestDispatcherSlowReceiverDropsAndEmitNeverBlocks(t *testing.T) {
	r := newReceiver(t, &receiver{block: make(chan struct{})})
	s := r.sink(t, WebhookOptions{Timeout: time.Minute})
	var onDrop atomic.Int64
	const queue, n = 4, 1000
	d := NewDispatcher(DispatcherOptions{
		Sinks: []Sink{s}, Queue: queue, Log: quiet(),
		OnDrop: func(sink string) {
			if sink == "webhook" {
				onDrop.Add(1)
			}
		},
	})

	// The first request reaches the receiver and hangs there.
	d.Emit(pushEvent(0))
	waitFor(t, 5*time.Second, "the first request", func() bool { a, _, _ := r.stats(); return a == 1 })

	emitted := make(chan time.Duration)
	go func() {
		start := time.Now()
		for i := 1; i < n; i++ {
			d.Emit(pushEvent(i))
		}
		emitted <- time.Since(start)
	}()
	select {
	case took := <-emitted:
		t.Logf("%d Emits took %v while the receiver hung", n-1, took)
	case <-time.After(5 * time.Second):
		t.Fatal("Emit blocked behind a receiver that does not answer")
	}

	st := sinkStats(t, d, "webhook")
	if st.Queued != queue || st.Dropped != n-1-queue || st.Sent != 0 {
		t.Errorf("while hung: %+v; want %d queued, %d dropped, 0 sent", st, queue, n-1-queue)
	}
	if got := onDrop.Load(); got != int64(st.Dropped) {
		t.Errorf("OnDrop called %d times, stats say %d dropped", got, st.Dropped)
	}

	close(r.block)
	closeDispatcher(t, d)
	st = sinkStats(t, d, "webhook")
	_, delivered, badSig := r.stats()
	if st.Sent != 1+queue || st.Failed != 0 || st.Sent+st.Dropped != n || st.Queued != 0 {
		t.Errorf("after Close: %+v; want %d sent, the rest of %d dropped", st, 1+queue, n)
	}
	if delivered != int(st.Sent) || badSig != 0 {
		t.Errorf("receiver got %d events (%d bad signatures), stats say %d sent", delivered, badSig, st.Sent)
	}
}

// A webhook that hangs does not hold back the other sinks.
func TestDispatcherSlowSinkDoesNotHoldBackOthers(t *testing.T) {
	r := newReceiver(t, &receiver{block: make(chan struct{})})
	slow := r.sink(t, WebhookOptions{Timeout: time.Minute})
	fast := &memSink{name: "fast"}
	d := NewDispatcher(DispatcherOptions{Sinks: []Sink{slow, fast}, Queue: 16, Log: quiet()})
	for i := range 10 {
		d.Emit(pushEvent(i))
	}
	waitFor(t, 5*time.Second, "the fast sink to get every event", func() bool { return fast.count() == 10 })
	if _, delivered, _ := r.stats(); delivered != 0 {
		t.Fatalf("the hung receiver accepted %d events", delivered)
	}
	close(r.block)
	closeDispatcher(t, d)
	if _, delivered, _ := r.stats(); delivered != 10 {
		t.Errorf("after the receiver resumed it got %d events, want 10", delivered)
	}
}

func TestDispatcherCloseGivesUp(t *testing.T) {
	r := newReceiver(t, &receiver{block: make(chan struct{})})
	s := r.sink(t, WebhookOptions{Timeout: time.Minute})
	var drops, failures atomic.Int64
	d := NewDispatcher(DispatcherOptions{
		Sinks: []Sink{s}, Queue: 8, Log: quiet(),
		OnDrop:    func(string) { drops.Add(1) },
		OnFailure: func(string) { failures.Add(1) },
	})
	d.Emit(pushEvent(0))
	waitFor(t, 5*time.Second, "the first request", func() bool { a, _, _ := r.stats(); return a == 1 })
	for i := 1; i < 6; i++ {
		d.Emit(pushEvent(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := d.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want the deadline", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Close took %v with a 200 ms deadline", took)
	}
	st := sinkStats(t, d, "webhook")
	if st.Sent != 0 || st.Failed+st.Dropped != 6 || st.Failed != 1 {
		t.Errorf("stats %+v; want the in-flight event failed and the 5 queued dropped", st)
	}
	if drops.Load() != int64(st.Dropped) || failures.Load() != int64(st.Failed) {
		t.Errorf("callbacks: %d drops, %d failures; stats %+v", drops.Load(), failures.Load(), st)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

func TestDispatcherEmitAfterClose(t *testing.T) {
	s := &memSink{name: "m"}
	var drops atomic.Int64
	d := NewDispatcher(DispatcherOptions{Sinks: []Sink{s}, Log: quiet(), OnDrop: func(string) { drops.Add(1) }})
	closeDispatcher(t, d)
	d.Emit(pushEvent(1))
	if st := sinkStats(t, d, "m"); st.Dropped != 1 || drops.Load() != 1 || s.count() != 0 {
		t.Errorf("after Close: stats %+v, %d OnDrop calls, %d sent; want 1 dropped", st, drops.Load(), s.count())
	}
}

func TestDispatcherInvalidEvents(t *testing.T) {
	s := &memSink{name: "m"}
	log, buf := captureLog()
	d := NewDispatcher(DispatcherOptions{Sinks: []Sink{s}, Log: log})
	d.Emit(Event{})
	d.Emit(Event{Type: TypePush, Data: map[string]any{"time": 1}})
	d.Emit(Event{Type: TypePush, Data: map[string]any{"event": "login"}})
	closeDispatcher(t, d)
	if st := d.Stats(); st.Invalid != 3 || s.count() != 0 || st.Sinks[0].Dropped != 0 {
		t.Errorf("stats %+v, %d sent; want 3 invalid, nothing sent or dropped", st, s.count())
	}
	if !strings.Contains(buf.String(), "invalid event") {
		t.Errorf("no log line for invalid events:\n%s", buf)
	}
}

func TestDispatcherFilter(t *testing.T) {
	pushOnly := filterSink{&memSink{name: "push-only", wants: func(t string) bool { return t == TypePush }}}
	all := &memSink{name: "all"}
	d := NewDispatcher(DispatcherOptions{Sinks: []Sink{pushOnly, all}, Queue: 1, Log: quiet()})
	d.Emit(pushEvent(1))
	waitFor(t, 5*time.Second, "the push", func() bool { return pushOnly.count() == 1 && all.count() == 1 })
	// With a queue of 1 these would be dropped if they were queued.
	for range 50 {
		d.Emit(Event{Type: TypeMessage})
	}
	closeDispatcher(t, d)
	if st := sinkStats(t, d, "push-only"); st.Sent != 1 || st.Dropped != 0 || pushOnly.count() != 1 {
		t.Errorf("push-only sink: %+v, got %d; want only the push, nothing dropped", st, pushOnly.count())
	}
}

func TestDispatcherCountsFailures(t *testing.T) {
	var failures atomic.Int64
	partial := &memSink{name: "partial", fail: func(b []Event) error {
		return &SendError{Failed: 1, Err: errors.New("one refused")}
	}}
	broken := &memSink{name: "broken", fail: func([]Event) error { return errors.New("down") }}
	liar := &memSink{name: "liar", fail: func(b []Event) error { return &SendError{Failed: len(b) + 5} }}
	log, buf := captureLog()
	d := NewDispatcher(DispatcherOptions{Sinks: []Sink{partial, broken, liar}, Log: log,
		OnFailure: func(string) { failures.Add(1) }})
	// The counts below hold however the worker batches these.
	for i := range 3 {
		d.Emit(pushEvent(i))
	}
	closeDispatcher(t, d)
	p, b, l := sinkStats(t, d, "partial"), sinkStats(t, d, "broken"), sinkStats(t, d, "liar")
	if p.Sent+p.Failed != 3 || p.Failed == 0 {
		t.Errorf("partial: %+v; want 3 in all, some failed", p)
	}
	if b.Failed != 3 || b.Sent != 0 {
		t.Errorf("broken: %+v; want 3 failed", b)
	}
	if l.Failed != 3 || l.Sent != 0 {
		t.Errorf("liar (Failed beyond the batch): %+v; want the whole batch failed", l)
	}
	if got := failures.Load(); got != int64(p.Failed+b.Failed+l.Failed) {
		t.Errorf("OnFailure called %d times, stats say %d", got, p.Failed+b.Failed+l.Failed)
	}
	if !strings.Contains(buf.String(), "sink failed") || !strings.Contains(buf.String(), "sink=broken") {
		t.Errorf("failures not logged:\n%s", buf)
	}
}

// Emit from many goroutines while Close runs: no panic (a send on a
// closed queue), and every event is accounted for exactly once.
func TestDispatcherConcurrentEmitAndClose(t *testing.T) {
	s := &memSink{name: "m"}
	d := NewDispatcher(DispatcherOptions{Sinks: []Sink{s}, Queue: 64, Log: quiet()})
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				d.Emit(Event{Type: TypeLogin, Data: map[string]any{"uid": fmt.Sprint(g*each + i)}})
			}
		}()
	}
	// Close while the emitters are still going.
	waitFor(t, 5*time.Second, "some events sent", func() bool { return s.count() > 0 })
	closeDispatcher(t, d)
	wg.Wait()
	st := sinkStats(t, d, "m")
	if st.Sent+st.Dropped != goroutines*each || int(st.Sent) != s.count() || st.Queued != 0 {
		t.Errorf("stats %+v, sink got %d; want sent+dropped = %d", st, s.count(), goroutines*each)
	}
}

func TestDispatcherWithoutSinks(t *testing.T) {
	d := NewDispatcher(DispatcherOptions{})
	d.Emit(pushEvent(1))
	closeDispatcher(t, d)
	if st := d.Stats(); len(st.Sinks) != 0 || st.Invalid != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestDispatcherDropsAreLoggedSparingly(t *testing.T) {
	r := newReceiver(t, &receiver{block: make(chan struct{})})
	s := r.sink(t, WebhookOptions{Timeout: time.Minute})
	log, buf := captureLog()
	d := NewDispatcher(DispatcherOptions{Sinks: []Sink{s}, Queue: 1, Log: log})
	for i := range 200 {
		d.Emit(pushEvent(i))
	}
	if n := strings.Count(buf.String(), "events dropped"); n != 1 {
		t.Errorf("%d drop log lines for a burst, want 1:\n%s", n, buf)
	}
	close(r.block)
	closeDispatcher(t, d)
}

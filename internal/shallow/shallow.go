package shallow

import (
	"sync"
	"time"
)

// idleFor is how long a parked worker waits for the next call before the
// sweep ends it, so the pool shrinks back after a reconnect storm.
const idleFor = 10 * time.Second

// Pool runs calls on worker goroutines so that the stack a call needs is
// never the caller's. The zero value is ready; Close ends its workers. It
// is safe for concurrent use.
//
// A worker is parked after each call, with the stack it grew, for the
// next one: a new goroutine per call grew a fresh stack to Pebble's depth
// every time (several copies, 3% of a reconnect storm's CPU). The most
// recently parked goes first, and a sweep ends those idle for idleFor, so
// the pool is as large as the recent peak of concurrent calls.
type Pool struct {
	mu       sync.Mutex
	idle     []*worker // parked, least recently used first
	sweeping bool
	closed   bool
}

type worker struct {
	work   chan func()
	done   chan struct{}
	parked time.Time
}

// Run calls f on a worker and returns when f has returned. Everything f
// wrote is visible to the caller afterwards (the channel handoff orders
// it). A panic in f is not recovered: it ends the program, as it would in
// the caller. After Close, Run still works, on a worker that ends after
// the call.
func (p *Pool) Run(f func()) {
	w := p.get()
	w.work <- f
	<-w.done
	p.put(w)
}

// Close ends the parked workers, and those busy when they return.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.expire(time.Now().Add(time.Hour))
}

func (p *Pool) get() *worker {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1] // the most recently parked: its stack is the warmest
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return w
	}
	p.mu.Unlock()
	w := &worker{work: make(chan func()), done: make(chan struct{})}
	go w.loop()
	return w
}

func (p *Pool) put(w *worker) {
	w.parked = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		close(w.work)
		return
	}
	p.idle = append(p.idle, w)
	if !p.sweeping {
		p.sweeping = true
		time.AfterFunc(idleFor, p.sweep)
	}
}

func (w *worker) loop() {
	for f := range w.work {
		f()
		w.done <- struct{}{}
	}
}

// sweep ends the workers parked for longer than idleFor and, while any
// are left, looks again in idleFor.
func (p *Pool) sweep() {
	p.expire(time.Now().Add(-idleFor))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sweeping = len(p.idle) > 0; p.sweeping {
		time.AfterFunc(idleFor, p.sweep)
	}
}

// expire ends the workers parked before cutoff.
func (p *Pool) expire(cutoff time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for n < len(p.idle) && p.idle[n].parked.Before(cutoff) {
		close(p.idle[n].work)
		n++
	}
	rest := copy(p.idle, p.idle[n:])
	clear(p.idle[rest:])
	p.idle = p.idle[:rest]
}

// parked is the number of idle workers.
func (p *Pool) parked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

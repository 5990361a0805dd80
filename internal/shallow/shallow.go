package shallow

import (
	"sync"
	"time"
)

// idleFor is how long a parked worker waits for the next call before the
// sweep ends it, so the pool shrinks back after a reconnect storm.
const idleFor = 10 * time.Second

// Run calls f on another goroutine and returns when f has returned, so the
// stack f needs is never the caller's. Everything f wrote is visible to
// the caller afterwards (the channel handoff orders it). A panic in f is
// not recovered: it ends the program, as it would in the caller.
//
// The goroutine is a parked worker when one is idle: a new goroutine per
// call grew a fresh stack to Pebble's depth every time (several copies,
// 3% of a reconnect storm's CPU), while a worker keeps the one it grew.
func Run(f func()) {
	w := workers.get()
	w.work <- f
	<-w.done
	workers.put(w)
}

// workers is the process's pool: as large as the recent peak of
// concurrent calls, idle ones ended by a sweep every idleFor.
var workers pool

type pool struct {
	mu       sync.Mutex
	idle     []*worker // parked, least recently used first
	sweeping bool
}

type worker struct {
	work   chan func()
	done   chan struct{}
	parked time.Time
}

func (p *pool) get() *worker {
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

func (p *pool) put(w *worker) {
	w.parked = time.Now()
	p.mu.Lock()
	p.idle = append(p.idle, w)
	if !p.sweeping {
		p.sweeping = true
		time.AfterFunc(idleFor, p.sweep)
	}
	p.mu.Unlock()
}

func (w *worker) loop() {
	for f := range w.work {
		f()
		w.done <- struct{}{}
	}
}

// sweep ends the workers parked for longer than idleFor and, while any
// are left, looks again in idleFor.
func (p *pool) sweep() {
	p.expire(time.Now().Add(-idleFor))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sweeping = len(p.idle) > 0; p.sweeping {
		time.AfterFunc(idleFor, p.sweep)
	}
}

// expire ends the workers parked before cutoff.
func (p *pool) expire(cutoff time.Time) {
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
func (p *pool) parked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

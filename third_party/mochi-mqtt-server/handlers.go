package mqtt

import (
	"sync"
	"time"
)

// handlerIdle is how long a parked handler goroutine waits for work before
// the server's once-a-second loop ends it.
const handlerIdle = 10 * time.Second

// handlerPool runs the handling of client packets, CONNECTs and
// disconnections on goroutines other than the clients' read goroutines,
// for Options.ShallowClientStacks (inboxmq patch 1). A handler goroutine
// is parked after each call, with the stack it grew, for the next one: a
// new goroutine per packet would grow a fresh stack (several copies) every
// time. Handlers that stay unused for handlerIdle end, so the pool is as
// large as the recent peak of concurrent handling. Safe for concurrent use.
type handlerPool struct {
	mu   sync.Mutex
	idle []*handler // parked, least recently used first
}

// handler is one parked goroutine: it runs each function sent on work and
// answers on done.
type handler struct {
	work   chan func()
	done   chan struct{}
	parked time.Time // when it was last parked
}

// run calls f on a handler goroutine and returns when f has returned.
// Everything f wrote is visible to the caller afterwards (channel handoff).
// A panic in f is not recovered: it ends the program, as it would on the
// read goroutine.
func (p *handlerPool) run(f func()) {
	h := p.get()
	h.work <- f
	<-h.done
	p.put(h)
}

func (p *handlerPool) get() *handler {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		h := p.idle[n-1] // the most recently parked: its stack is the warmest
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return h
	}
	p.mu.Unlock()
	h := &handler{work: make(chan func()), done: make(chan struct{})}
	go h.loop()
	return h
}

func (p *handlerPool) put(h *handler) {
	h.parked = time.Now()
	p.mu.Lock()
	p.idle = append(p.idle, h)
	p.mu.Unlock()
}

func (h *handler) loop() {
	for f := range h.work {
		f()
		h.done <- struct{}{}
	}
}

// expire ends the handlers parked since before now - handlerIdle.
func (p *handlerPool) expire(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for n < len(p.idle) && now.Sub(p.idle[n].parked) > handlerIdle {
		close(p.idle[n].work)
		n++
	}
	if n == 0 {
		return
	}
	rest := copy(p.idle, p.idle[n:])
	clear(p.idle[rest:])
	p.idle = p.idle[:rest]
}

// size is the number of parked handlers.
func (p *handlerPool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// Package lifetime is the open/closed gate both inbox stores put around
// their methods: every method runs inside Enter/Exit, and Close waits for
// the ones in progress and turns later ones away with inbox.ErrClosed.
package lifetime

import (
	"sync"

	"github.com/inboxmq/inboxmq/inbox"
)

// Gate is open until Close. The zero value is open.
type Gate struct {
	mu     sync.RWMutex
	closed bool // guarded by mu
}

// Enter lets a method in, shared with other methods; after a nil error
// the caller must call Exit. It fails with inbox.ErrClosed once closed.
func (g *Gate) Enter() error {
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return inbox.ErrClosed
	}
	return nil
}

// Exit ends what Enter began.
func (g *Gate) Exit() { g.mu.RUnlock() }

// Close waits for the methods inside, closes the gate and runs release
// (the store's own clean-up) while no method can be inside. A second
// Close returns inbox.ErrClosed without running release.
func (g *Gate) Close(release func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return inbox.ErrClosed
	}
	g.closed = true
	return release()
}

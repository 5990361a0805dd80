package broker

import (
	"net"
	"testing"
	"time"
)

// drain waits for connections handed out but not yet read by mochi, and
// refuses new ones once it started.
func TestConnGate(t *testing.T) {
	var g connGate
	a, b := net.Pipe()
	defer b.Close()
	c, ok := g.admit(a)
	if !ok {
		t.Fatal("refused before draining")
	}
	drained := make(chan struct{})
	go func() {
		g.drain(10 * time.Second)
		close(drained)
	}()
	select {
	case <-drained:
		t.Fatal("drain returned while a connection was not yet read")
	case <-time.After(200 * time.Millisecond):
	}
	go b.Write([]byte{0x10})
	if _, err := c.Read(make([]byte, 1)); err != nil { // mochi's first read
		t.Fatal(err)
	}
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("drain still waiting after the first read")
	}
	x, y := net.Pipe()
	defer y.Close()
	defer x.Close()
	if _, ok := g.admit(x); ok {
		t.Fatal("deny: a connection admitted after drain")
	}
}

package lifetime

import (
	"errors"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
)

func TestGate(t *testing.T) {
	var g Gate
	if err := g.Enter(); err != nil {
		t.Fatalf("Enter on an open gate: %v", err)
	}
	released := make(chan struct{})
	closed := make(chan error)
	go func() {
		closed <- g.Close(func() error { close(released); return nil })
	}()
	select {
	case <-released:
		t.Fatal("Close ran release while a method was inside")
	case <-time.After(50 * time.Millisecond):
	}
	g.Exit()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := g.Enter(); !errors.Is(err, inbox.ErrClosed) {
		t.Fatalf("Enter after Close = %v, want inbox.ErrClosed", err)
	}
	ran := false
	if err := g.Close(func() error { ran = true; return nil }); !errors.Is(err, inbox.ErrClosed) || ran {
		t.Fatalf("second Close = %v (release ran: %v), want inbox.ErrClosed without release", err, ran)
	}
}

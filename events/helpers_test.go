package events

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// logBuffer is a log destination tests can read while goroutines write.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func captureLog() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// memSink records what it is sent; a fake for the Outbox's own logic
// (the real sinks are tested against a real HTTP server and Redis).
type memSink struct {
	name  string
	wants func(string) bool   // nil: not a Filter
	fail  func([]Event) error // nil: every Send succeeds

	mu     sync.Mutex
	events []Event
}

func (s *memSink) Name() string { return s.name }

func (s *memSink) Send(_ context.Context, batch []Event) error {
	s.mu.Lock()
	s.events = append(s.events, batch...)
	s.mu.Unlock()
	if s.fail != nil {
		return s.fail(batch)
	}
	return nil
}

func (s *memSink) got() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

func (s *memSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

// filterSink is a memSink that implements Filter.
type filterSink struct{ *memSink }

func (s filterSink) Wants(t string) bool { return s.wants(t) }

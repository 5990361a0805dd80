package keyrate

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := NewLimiter(0.0001, 3)
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("line %d of the burst refused", i)
		}
	}
	for range 5 {
		if ok, _ := l.Allow("a"); ok {
			t.Fatal("line over the burst allowed")
		}
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key is limited by the first")
	}
	// The next allowed line reports the 5 held back.
	l2 := NewLimiter(1000, 1)
	l2.Allow("x")
	l2.Allow("x")
	for {
		if ok, n := l2.Allow("x"); ok {
			if n < 1 {
				t.Fatalf("suppressed = %d, want the lines held back", n)
			}
			break
		}
	}
}

func TestWait(t *testing.T) {
	l := NewLimiter(20, 1) // a token every 50 ms
	if err := l.Wait("a", 0); err != nil {
		t.Fatalf("first token: %v", err)
	}
	if err := l.Wait("a", 0); err != ErrWaitTooLong {
		t.Fatalf("second token without waiting: %v, want ErrWaitTooLong", err)
	}
	if err := l.Wait("a", time.Millisecond); err != ErrWaitTooLong {
		t.Fatalf("a 50 ms wait allowed 1 ms: %v", err)
	}
	if err := l.Wait("a", time.Second); err != nil {
		t.Fatalf("a 50 ms wait allowed 1 s: %v", err)
	}
	if err := l.Wait("b", 0); err != nil {
		t.Fatalf("another key waits for the first: %v", err)
	}
}

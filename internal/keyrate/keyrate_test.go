package keyrate

import "testing"

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

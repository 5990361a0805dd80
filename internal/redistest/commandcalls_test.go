package redistest

import (
	"strconv"
	"testing"
	"time"
)

// CommandCalls counts what the server ran: the tests that bound a
// command's calls (a cap would pass with a counter stuck at 0) rely on it.
func TestCommandCalls(t *testing.T) {
	r := Start(t, Config{})
	if n, err := CommandCalls(r.Addr, "sismember"); err != nil || n != 0 {
		t.Fatalf("before any SISMEMBER: %d, %v; want 0", n, err)
	}
	for i := range 3 {
		if _, err := Do(r.Addr, 5*time.Second, "SISMEMBER", "s", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Do(r.Addr, 5*time.Second, "SADD", "s", "x"); err != nil {
		t.Fatal(err)
	}
	if n, err := CommandCalls(r.Addr, "sismember"); err != nil || n != 3 {
		t.Fatalf("after 3 SISMEMBER: %d, %v; want 3", n, err)
	}
	if n, err := CommandCalls(r.Addr, "sadd"); err != nil || n != 1 {
		t.Fatalf("after 1 SADD: %d, %v; want 1", n, err)
	}
}

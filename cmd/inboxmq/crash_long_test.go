//go:build crashlong

package main

// Built only with -tags crashlong (make test-crash), so the default suite
// neither runs nor skips it.

import (
	"testing"
	"time"
)

// TestCrash_Long is `make test-crash`: 200 users, 10 kills, a few minutes.
func TestCrash_Long(t *testing.T) {
	runCrash(t, crashParams{
		Senders: 100, Online: 50, Offline: 50,
		Kills:    10,
		Duration: 3 * time.Minute,
		Rate:     4,
		Window:   4,
		Drain:    5 * time.Minute,
	})
}

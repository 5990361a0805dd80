package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
)

func testPushes(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, inbox.Options{})
	base := time.UnixMilli(time.Now().UnixMilli())
	const lease = time.Minute
	entries := []inbox.PushEntry{
		{UID: "10021", Seq: 3, Due: base.Add(2 * time.Second)},
		{UID: "10021", Seq: 1, Due: base},
		{UID: "1002", Seq: 7, Due: base.Add(time.Second)},
		{UID: "10", Seq: 1, Due: base.Add(time.Hour)},
	}
	if err := s.SchedulePush(ctx, entries); err != nil {
		t.Fatalf("SchedulePush: %v", err)
	}
	if got, err := s.ClaimDuePushes(ctx, base.Add(-time.Millisecond), lease, 10); err != nil || len(got) != 0 {
		t.Fatalf("nothing is due yet: %v, %v", got, err)
	}
	now := base.Add(2 * time.Second)
	first, err := s.ClaimDuePushes(ctx, now, lease, 2)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keysOf(first)) != "[10021/1 1002/7]" || !first[0].Due.Equal(now.Add(lease)) {
		t.Fatalf("first claim (limit 2) = %v, want 10021/1 and 1002/7 due again at %v", first, now.Add(lease))
	}
	second, err := s.ClaimDuePushes(ctx, now, lease, 10)
	if err != nil || fmt.Sprint(keysOf(second)) != "[10021/3]" {
		t.Fatalf("second claim = %v, %v", second, err)
	}
	if got, _ := s.ClaimDuePushes(ctx, now, lease, 10); len(got) != 0 {
		t.Fatalf("claimed twice within the lease: %v", got)
	}
	// The first claimer is done with 10021/1 only; the rest come back
	// when their lease ends, as if their claimer had died.
	if err := s.DonePushes(ctx, first[:1]); err != nil {
		t.Fatalf("DonePushes: %v", err)
	}
	later := now.Add(lease)
	got, err := s.ClaimDuePushes(ctx, later, lease, 10)
	if err != nil || fmt.Sprint(sortedKeys(got)) != "[1002/7 10021/3]" {
		t.Fatalf("claim after the lease = %v, %v; want 1002/7 and 10021/3 back, 10021/1 done", got, err)
	}
	// A Done from a claim whose lease ended and was claimed again does not
	// remove the new claim.
	if err := s.DonePushes(ctx, second); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.ClaimDuePushes(ctx, later.Add(lease), lease, 10); fmt.Sprint(sortedKeys(got)) != "[1002/7 10021/3]" {
		t.Fatalf("claim after a stale Done = %v, want 1002/7 and 10021/3", got)
	}
	if err := s.DonePushes(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.ClaimDuePushes(ctx, base.Add(3*time.Hour), lease, 10); fmt.Sprint(keysOf(got)) != "[10/1]" {
		t.Fatalf("last claim = %v, want 10/1 alone", got)
	}
}

func testPushesClaimedOnce(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, inbox.Options{})
	due := time.UnixMilli(time.Now().UnixMilli())
	var entries []inbox.PushEntry
	for i := 1; i <= 200; i++ {
		entries = append(entries, inbox.PushEntry{UID: fmt.Sprintf("u%d", i%7), Seq: uint64(i), Due: due})
	}
	if err := s.SchedulePush(ctx, entries); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := s.ClaimDuePushes(ctx, due, time.Hour, 13)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, k := range keysOf(got) {
					seen[k]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 200 {
		t.Fatalf("claimed %d distinct entries, want 200", len(seen))
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s claimed %d times", k, n)
		}
	}
}

func sortedKeys(es []inbox.PushEntry) []string {
	k := keysOf(es)
	slices.Sort(k)
	return k
}

func keysOf(es []inbox.PushEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = fmt.Sprintf("%s/%d", e.UID, e.Seq)
	}
	return out
}

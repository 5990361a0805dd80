package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
)

func testPushes(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, inbox.Options{})
	base := time.UnixMilli(time.Now().UnixMilli())
	entries := []inbox.PushEntry{
		{UID: "10021", Seq: 3, Due: base.Add(2 * time.Second)},
		{UID: "10021", Seq: 1, Due: base},
		{UID: "1002", Seq: 7, Due: base.Add(time.Second)},
		{UID: "10", Seq: 1, Due: base.Add(time.Hour)},
	}
	if err := s.SchedulePush(ctx, entries); err != nil {
		t.Fatalf("SchedulePush: %v", err)
	}
	if got, err := s.ClaimDuePushes(ctx, base.Add(-time.Millisecond), 10); err != nil || len(got) != 0 {
		t.Fatalf("nothing is due yet: %v, %v", got, err)
	}
	got, err := s.ClaimDuePushes(ctx, base.Add(2*time.Second), 2)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keysOf(got)) != "[10021/1 1002/7]" || !got[0].Due.Equal(base) {
		t.Fatalf("first claim (limit 2) = %v", got)
	}
	got, err = s.ClaimDuePushes(ctx, base.Add(2*time.Second), 10)
	if err != nil || fmt.Sprint(keysOf(got)) != "[10021/3]" {
		t.Fatalf("second claim = %v, %v", got, err)
	}
	if got, _ := s.ClaimDuePushes(ctx, base.Add(2*time.Second), 10); len(got) != 0 {
		t.Fatalf("claimed twice: %v", got)
	}
	if got, _ := s.ClaimDuePushes(ctx, base.Add(2*time.Hour), 10); fmt.Sprint(keysOf(got)) != "[10/1]" {
		t.Fatalf("later claim = %v", got)
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
				got, err := s.ClaimDuePushes(ctx, due, 13)
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

func keysOf(es []inbox.PushEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = fmt.Sprintf("%s/%d", e.UID, e.Seq)
	}
	return out
}

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

var outboxTests = []subtest{
	{"OutboxClaimLeaseDelete", testOutboxClaimLeaseDelete},
	{"OutboxClaimedOnce", testOutboxClaimedOnce},
	{"OutboxSameIDReplaces", testOutboxSameIDReplaces},
}

// An event enqueued again under its id (a push re-checked after its
// checker failed) replaces the waiting one: one entry, one delivery.
func testOutboxSameIDReplaces(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, inbox.Options{})
	now := time.UnixMilli(time.Now().UnixMilli())
	if err := s.EnqueueEvents(ctx, []inbox.OutboxEntry{outboxEntry("webhook", "p", now)}); err != nil {
		t.Fatal(err)
	}
	again := outboxEntry("webhook", "p", now.Add(time.Second))
	again.Body = []byte(`{"event":"push","id":"p","again":true}`)
	if err := s.EnqueueEvents(ctx, []inbox.OutboxEntry{again}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.OutboxLen(ctx, "webhook"); err != nil || n != 1 {
		t.Fatalf("OutboxLen = %d, %v, want 1", n, err)
	}
	got, err := s.ClaimDueEvents(ctx, "webhook", now.Add(time.Hour), time.Minute, 10)
	if err != nil || len(got) != 1 || string(got[0].Body) != string(again.Body) {
		t.Fatalf("claim = %+v, %v, want the second entry alone", got, err)
	}
}

func outboxEntry(sink, id string, due time.Time) inbox.OutboxEntry {
	return inbox.OutboxEntry{Sink: sink, ID: id, Type: "push", Body: []byte(fmt.Sprintf(`{"event":"push","id":%q}`, id)),
		Created: due, Due: due}
}

func ids(es []inbox.OutboxEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func testOutboxClaimLeaseDelete(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, inbox.Options{})
	now := time.UnixMilli(time.Now().UnixMilli())
	err := s.EnqueueEvents(ctx, []inbox.OutboxEntry{
		outboxEntry("webhook", "b", now.Add(time.Second)),
		outboxEntry("webhook", "a", now),
		outboxEntry("webhook", "later", now.Add(time.Hour)),
		outboxEntry("stream", "a", now), // same id, other sink: its own entry
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.OutboxLen(ctx, "webhook"); err != nil || n != 3 {
		t.Fatalf("OutboxLen = %d, %v", n, err)
	}
	got, err := s.ClaimDueEvents(ctx, "webhook", now.Add(time.Second), time.Minute, 10)
	if err != nil || fmt.Sprint(ids(got)) != "[a b]" {
		t.Fatalf("claim = %v, %v; want [a b], earliest first", ids(got), err)
	}
	if string(got[0].Body) != `{"event":"push","id":"a"}` || got[0].Type != "push" || !got[0].Created.Equal(now) || got[0].Attempt != 0 {
		t.Fatalf("claimed entry = %+v", got[0])
	}
	// Leased: not due again until the lease ends.
	if again, _ := s.ClaimDueEvents(ctx, "webhook", now.Add(30*time.Second), time.Minute, 10); len(again) != 0 {
		t.Fatalf("claimed twice within the lease: %v", ids(again))
	}
	// The claimer of "a" died: "a" is due again after the lease. "b" is
	// rescheduled by its claimer with an attempt counted.
	b := got[1]
	b.Attempt, b.Due = 1, now.Add(2*time.Minute)
	if err := s.RescheduleEvent(ctx, b); err != nil {
		t.Fatal(err)
	}
	again, err := s.ClaimDueEvents(ctx, "webhook", now.Add(90*time.Second), time.Minute, 10)
	if err != nil || fmt.Sprint(ids(again)) != "[a]" {
		t.Fatalf("after the lease = %v, %v; want [a]", ids(again), err)
	}
	again, err = s.ClaimDueEvents(ctx, "webhook", now.Add(2*time.Minute), time.Minute, 10)
	if err != nil || fmt.Sprint(ids(again)) != "[b]" || again[0].Attempt != 1 {
		t.Fatalf("rescheduled = %+v, %v", again, err)
	}
	if err := s.DeleteEvents(ctx, "webhook", []string{"a", "b", "never"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RescheduleEvent(ctx, b); err != nil { // deleted: nothing comes back
		t.Fatal(err)
	}
	if n, _ := s.OutboxLen(ctx, "webhook"); n != 1 {
		t.Fatalf("OutboxLen after delete = %d, want 1 (later)", n)
	}
	if got, _ := s.ClaimDueEvents(ctx, "webhook", now.Add(10*time.Hour), time.Minute, 10); fmt.Sprint(ids(got)) != "[later]" {
		t.Fatalf("left = %v", ids(got))
	}
	if got, _ := s.ClaimDueEvents(ctx, "stream", now, time.Minute, 10); fmt.Sprint(ids(got)) != "[a]" {
		t.Fatalf("other sink = %v", ids(got))
	}
}

func testOutboxClaimedOnce(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, inbox.Options{})
	now := time.UnixMilli(time.Now().UnixMilli())
	var es []inbox.OutboxEntry
	for i := range 200 {
		es = append(es, outboxEntry("webhook", fmt.Sprintf("e%03d", i), now))
	}
	if err := s.EnqueueEvents(ctx, es); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var all []string
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := s.ClaimDueEvents(ctx, "webhook", now, time.Hour, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				all = append(all, ids(got)...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(all)
	if len(all) != 200 || len(slices.Compact(all)) != 200 {
		t.Fatalf("claimed %d entries (%d distinct), want 200 once each", len(all), len(slices.Compact(slices.Clone(all))))
	}
}

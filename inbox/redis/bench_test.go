package redisstore

import (
	"context"
	"strconv"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

// The benchmarks run against a local redis-server without persistence,
// so they measure the code and loopback round trips, not a disk or a
// network: compare runs on one machine only. Each reports the round trips
// an operation costs, which is what dominates on a real network.

// BenchmarkAppend appends a direct message: the recipient's entry and the
// sender's copy, two inboxes.
func BenchmarkAppend(b *testing.B) {
	c, rt := countedClient(b)
	s := openStore(b, c, newPrefix(), inbox.Options{MaxPerInbox: 1000})
	ctx := context.Background()
	msgs := []inbox.Message{
		{UID: "alice", Kind: inbox.KindDirect, Peer: "bob", Nickname: "Bob", Content: "hello, world"},
		{UID: "bob", Kind: inbox.KindSent, Peer: "alice", Content: "hello, world", CID: "c1"},
	}
	if _, err := s.Append(ctx, msgs); err != nil { // loads the scripts
		b.Fatal(err)
	}
	rt.n.Store(0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Append(ctx, msgs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rt.n.Load())/float64(b.N), "roundtrips/op")
}

// BenchmarkRead_50 reads 50 messages from the middle of a 1000-message
// inbox, as a device catching up does.
func BenchmarkRead_50(b *testing.B) {
	c, rt := countedClient(b)
	s := openStore(b, c, newPrefix(), inbox.Options{})
	ctx := context.Background()
	for i := range 1000 {
		if _, err := s.Append(ctx, []inbox.Message{{
			UID: "alice", Kind: inbox.KindDirect, Peer: "bob", Nickname: "Bob", Content: "message " + strconv.Itoa(i),
		}}); err != nil {
			b.Fatal(err)
		}
	}
	rt.n.Store(0)
	b.ReportAllocs()
	for b.Loop() {
		msgs, err := s.Read(ctx, "alice", 500, 50)
		if err != nil {
			b.Fatal(err)
		}
		if len(msgs) != 50 {
			b.Fatalf("Read returned %d messages", len(msgs))
		}
	}
	b.ReportMetric(float64(rt.n.Load())/float64(b.N), "roundtrips/op")
}

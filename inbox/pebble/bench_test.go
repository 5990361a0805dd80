package pebblestore

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

// Every Append waits for an fsync, so these measure the disk as much as
// the code: compare runs on one machine only.

func BenchmarkAppend_1Inbox(b *testing.B) {
	s := openStore(b, b.TempDir(), inbox.Options{MaxPerInbox: 1000})
	ctx := context.Background()
	msg := []inbox.Message{{UID: "alice", Kind: inbox.KindDirect, Peer: "bob", Content: "hello, world"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Append(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend_Parallel has 16 appenders per CPU writing a direct
// message and the sender's copy, so group commit shares the fsyncs.
func BenchmarkAppend_Parallel(b *testing.B) {
	s := openStore(b, b.TempDir(), inbox.Options{MaxPerInbox: 1000})
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		me := "u" + strconv.FormatInt(next.Add(1), 10)
		msgs := []inbox.Message{
			{UID: me, Kind: inbox.KindSent, Peer: "peer", Content: "hello, world"},
			{UID: "peer", Kind: inbox.KindDirect, Peer: me, Content: "hello, world"},
		}
		for pb.Next() {
			if _, err := s.Append(ctx, msgs); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

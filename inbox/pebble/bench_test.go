package pebblestore

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
)

// Every Append waits for an fsync, so these measure the disk as much as
// the code: compare runs on one machine only. Those that report cpu-us/op
// (the process's CPU time per op, Pebble's own goroutines included) give
// the figure the broker's cost per message follows; ns/op is mostly
// waiting for fsyncs.

// cpuPerOp starts counting the process's CPU time; the func it returns
// reports it per op (defer it).
func cpuPerOp(b *testing.B) func() {
	b.Helper()
	start := processCPU(b)
	return func() { b.ReportMetric(float64(processCPU(b)-start)/float64(b.N)/1e3, "cpu-us/op") }
}

func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

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

// senders runs send on 16 goroutines per CPU, each a user of its own
// ("u1", "u2", ...) counting its sends from 1, so that group commit shares
// the fsyncs, and reports allocations and CPU per op.
func senders(b *testing.B, send func(me string, n int) error) {
	var next atomic.Int64
	b.ReportAllocs()
	defer cpuPerOp(b)()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		me := "u" + strconv.FormatInt(next.Add(1), 10)
		for n := 1; pb.Next(); n++ {
			if err := send(me, n); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAppend_Parallel has 16 appenders per CPU writing a direct
// message and the sender's copy, so group commit shares the fsyncs.
func BenchmarkAppend_Parallel(b *testing.B) {
	s := openStore(b, b.TempDir(), inbox.Options{MaxPerInbox: 1000})
	ctx := context.Background()
	senders(b, func(me string, _ int) error {
		_, err := s.Append(ctx, []inbox.Message{
			{UID: me, Kind: inbox.KindSent, Peer: "peer", Content: "hello, world"},
			{UID: "peer", Kind: inbox.KindDirect, Peer: me, Content: "hello, world"},
		})
		return err
	})
}

// fillThreads appends perThread direct messages from each of peers to
// alice's inbox, the threads interleaved, 100 entries per Append, and
// returns alice's Seqs by peer.
func fillThreads(b *testing.B, s *Store, peers, perThread int) map[string][]uint64 {
	b.Helper()
	seqs := make(map[string][]uint64, peers)
	var batch []inbox.Message
	flush := func() {
		got, err := s.Append(context.Background(), batch)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range got {
			seqs[m.Peer] = append(seqs[m.Peer], m.Seq)
		}
		batch = batch[:0]
	}
	for i := range perThread {
		for p := range peers {
			batch = append(batch, inbox.Message{
				UID: "alice", Kind: inbox.KindDirect, Peer: "peer" + strconv.Itoa(p),
				Nickname: "Peer", Content: "hello, world " + strconv.Itoa(i),
			})
			if len(batch) == 100 {
				flush()
			}
		}
	}
	if len(batch) > 0 {
		flush()
	}
	return seqs
}

// BenchmarkThread_Page50 reads the newest 50 messages of a thread of 1000
// that shares the inbox with another thread as long.
func BenchmarkThread_Page50(b *testing.B) {
	s := openStore(b, b.TempDir(), inbox.Options{})
	fillThreads(b, s, 2, 1000)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		msgs, err := s.Thread(ctx, "alice", "peer0", 0, 50)
		if err != nil || len(msgs) != 50 {
			b.Fatalf("Thread = %d messages, %v", len(msgs), err)
		}
	}
}

// twentyThreadsReadTo40 is a store whose alice has 20 threads of 50
// messages, each read up to its 40th.
func twentyThreadsReadTo40(b *testing.B) *Store {
	s := openStore(b, b.TempDir(), inbox.Options{})
	for peer, seqs := range fillThreads(b, s, 20, 50) {
		if err := s.MarkRead(context.Background(), "alice", peer, seqs[39]); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkUnread_20Threads counts an inbox of 20 threads of 50 messages,
// each read up to its 40th: 10 unread in each.
func BenchmarkUnread_20Threads(b *testing.B) {
	s, ctx := twentyThreadsReadTo40(b), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		u, err := s.Unread(ctx, "alice")
		if err != nil || u.Total != 200 {
			b.Fatalf("Unread = %d, %v, want 200", u.Total, err)
		}
	}
}

// BenchmarkThreads_20Threads lists the same inbox as
// BenchmarkUnread_20Threads, with each thread's newest message.
func BenchmarkThreads_20Threads(b *testing.B) {
	s, ctx := twentyThreadsReadTo40(b), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		ts, err := s.Threads(ctx, "alice", 0, 0)
		if err != nil || len(ts) != 20 {
			b.Fatalf("Threads = %d, %v, want 20", len(ts), err)
		}
	}
}

// BenchmarkSubmit_Keyed_Parallel is BenchmarkAppend_Parallel with a
// request key per message (a cid), as apps send them: each Submit also
// looks for and writes the request's dedupe record.
func BenchmarkSubmit_Keyed_Parallel(b *testing.B) {
	s := openStore(b, b.TempDir(), inbox.Options{MaxPerInbox: 1000})
	ctx := context.Background()
	senders(b, func(me string, n int) error {
		_, err := s.Submit(ctx, inbox.Request{Msgs: []inbox.Message{
			{UID: "peer", Kind: inbox.KindDirect, Peer: me, Content: "hello, world"},
			{UID: me, Kind: inbox.KindSent, Peer: "peer", Content: "hello, world"},
		}, Key: me + "/c-" + strconv.Itoa(n), Sum: [32]byte{1}})
		return err
	})
}

// BenchmarkSubmit_SteadyState is a broker's Submits after hours of
// direct messages: the dedupe window has passed, so request records
// leave as fast as they come. The store's clock advances 1 ms a Submit
// and the window is 1 s, so after the first thousand requests every one
// finds records past the window; the sweep of the broker's expiry loop
// runs every thousand requests. Recipients are 100 inboxes, so records
// spread as in the dm scenario. "key" has a cid on every request, "none"
// on none: the difference is what dedupe costs.
func BenchmarkSubmit_SteadyState(b *testing.B) {
	for _, keyed := range []bool{true, false} {
		name := map[bool]string{true: "key", false: "none"}[keyed]
		b.Run(name, func(b *testing.B) { benchSteadyState(b, keyed) })
	}
}

func benchSteadyState(b *testing.B, keyed bool) {
	s := openStore(b, b.TempDir(), inbox.Options{MaxPerInbox: 1000, DedupeWindow: time.Second})
	start := time.Now()
	var ticks, done atomic.Int64
	s.now = func() time.Time { return start.Add(time.Duration(ticks.Add(1)) * time.Millisecond) }
	ctx := context.Background()
	senders(b, func(me string, n int) error {
		peer := "peer" + strconv.Itoa((n*7+len(me))%100)
		req := inbox.Request{Msgs: []inbox.Message{
			{UID: peer, Kind: inbox.KindDirect, Peer: me, Content: "hello, world"},
			{UID: me, Kind: inbox.KindSent, Peer: peer, Content: "hello, world"},
		}}
		if keyed {
			req.Key, req.Sum = me+"/c-"+strconv.Itoa(n), [32]byte{1}
		}
		if _, err := s.Submit(ctx, req); err != nil {
			return err
		}
		if done.Add(1)%1000 == 0 {
			return s.expireRequests(s.now())
		}
		return nil
	})
}

// BenchmarkPutSession_Parallel is a reconnect storm: 16 clients per CPU
// each storing its session, as every CONNECT does. The writes are synced;
// concurrent ones share an fsync.
func BenchmarkPutSession_Parallel(b *testing.B) {
	s := openStore(b, b.TempDir(), inbox.Options{})
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		sess := inbox.Session{ID: "c" + strconv.FormatInt(next.Add(1), 10), Owner: "n1", Expires: 1}
		for pb.Next() {
			sess.Expires++
			if err := s.PutSession(ctx, sess); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkEnqueueEvents_Parallel is 16 publishers per CPU each emitting
// a stored event, as a webhook sink for messages has every publish do.
func BenchmarkEnqueueEvents_Parallel(b *testing.B) {
	s := openStore(b, b.TempDir(), inbox.Options{})
	ctx := context.Background()
	var next atomic.Int64
	now := time.UnixMilli(time.Now().UnixMilli())
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := inbox.OutboxEntry{Sink: "webhook", ID: strconv.FormatInt(next.Add(1), 10), Type: "message",
				Body: []byte(`{"type":"message"}`), Created: now, Due: now}
			if err := s.EnqueueEvents(ctx, []inbox.OutboxEntry{e}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSession_MissAfterRestart looks up sessions that do not exist
// in a store whose 100,000 sessions are in sstables, as every new device's
// CONNECT does after a restart (and the delivery hook's cursor read).
func BenchmarkSession_MissAfterRestart(b *testing.B) {
	s := openStore(b, b.TempDir(), inbox.Options{})
	ctx := context.Background()
	for i := range 100_000 {
		if err := s.PutSession(ctx, inbox.Session{ID: fmt.Sprintf("c%08d", 2*i), Owner: "n1", Expires: 1}); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i = (i + 7919) % 100_000 // between stored ids, all over the key space
		if _, ok, err := s.Session(ctx, fmt.Sprintf("c%08d", 2*i+1)); err != nil || ok {
			b.Fatal(ok, err)
		}
	}
}

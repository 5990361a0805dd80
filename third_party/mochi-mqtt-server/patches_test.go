package mqtt

// Tests of the inboxmq patch set (PATCHES.md).

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
)

// stackHook records the stack of the goroutine each hook event of one
// client's session ran on.
type stackHook struct {
	HookBase
	mu     sync.Mutex
	stacks map[string]string // event -> stack
}

func (h *stackHook) ID() string { return "stack-recorder" }

func (h *stackHook) Provides(b byte) bool {
	return b == OnConnect || b == OnSubscribed || b == OnDisconnect || b == OnPacketRead
}

func (h *stackHook) record(event string) {
	buf := make([]byte, 64<<10)
	buf = buf[:runtime.Stack(buf, false)]
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stacks[event] = string(buf)
}

func (h *stackHook) stack(event string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stacks[event]
}

func (h *stackHook) OnConnect(cl *Client, pk packets.Packet) error {
	h.record("connect")
	return nil
}

func (h *stackHook) OnPacketRead(cl *Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Pingreq {
		h.record("pingreq")
	}
	return pk, nil
}

func (h *stackHook) OnSubscribed(cl *Client, pk packets.Packet, reasonCodes []byte) {
	h.record("subscribed")
}

func (h *stackHook) OnDisconnect(cl *Client, err error, expire bool) {
	h.record("disconnect")
}

func newPatchServer(t *testing.T, shallow bool) (*Server, *stackHook) {
	t.Helper()
	cc := NewDefaultServerCapabilities()
	cc.MaximumMessageExpiryInterval = 0
	cc.ReceiveMaximum = 0
	s := New(&Options{Logger: logger, Capabilities: cc, InlineClient: true, ShallowClientStacks: shallow})
	require.NoError(t, s.AddHook(new(AllowHook), nil))
	h := &stackHook{stacks: map[string]string{}}
	require.NoError(t, s.AddHook(h, nil))
	return s, h
}

// expect reads len(want) bytes from r and compares them with want.
func expect(t *testing.T, r io.Reader, what string, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	_, err := io.ReadFull(r, got)
	require.NoError(t, err, what)
	require.Equal(t, want, got, what)
}

// goroutines is the stack dump of every goroutine.
func goroutines() string {
	// A dump that fills the buffer may have been cut short: a goroutine
	// looked for could be in the part left out.
	for size := 1 << 20; ; size *= 2 {
		buf := make([]byte, size)
		if n := runtime.Stack(buf, true); n < size {
			return string(buf[:n])
		}
	}
}

// settledCount is the number of goroutines running fn once none does, or
// after wait, whichever comes first.
func settledCount(fn string, wait time.Duration) int {
	deadline := time.Now().Add(wait)
	for {
		n := strings.Count(goroutines(), fn)
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitGoroutines polls until no goroutine runs fn (a function name).
func waitGoroutines(t *testing.T, fn string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Contains(goroutines(), fn) {
		if time.Now().After(deadline) {
			t.Fatalf("a goroutine still runs %s", fn)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Patch 1: with ShallowClientStacks a client's CONNECT, SUBSCRIBE, PINGREQ
// and its end are handled on goroutines that are not the one reading its
// connection (whose stack holds attachClient), and the protocol exchange is
// the same as without it; an idle client has no write goroutine.
func TestPatchShallowClientStacks(t *testing.T) {
	tests := []struct {
		name    string
		shallow bool
	}{
		{name: "off: mochi as released", shallow: false},
		{name: "on", shallow: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, h := newPatchServer(t, tt.shallow)
			defer s.Close()
			// Earlier tests' clients leave write loops behind that end a
			// moment after their servers close: wait for them (up to 3 s,
			// as long-lived ones of other tests may stay), then count, so
			// that one ending later cannot cancel this client's out.
			writeLoops := settledCount("(*Client).WriteLoop", 3*time.Second)
			r, w := net.Pipe()
			defer w.Close()
			done := make(chan error, 1)
			go func() { done <- s.EstablishConnection("tcp", r) }()

			_, err := w.Write(packets.TPacketData[packets.Connect].Get(packets.TConnectClean).RawBytes)
			require.NoError(t, err)
			expect(t, w, "CONNACK", packets.TPacketData[packets.Connack].Get(packets.TConnackAcceptedNoSession).RawBytes)
			_, err = w.Write(packets.TPacketData[packets.Subscribe].Get(packets.TSubscribe).RawBytes)
			require.NoError(t, err)
			expect(t, w, "SUBACK", packets.TPacketData[packets.Suback].Get(packets.TSuback).RawBytes)
			_, err = w.Write(packets.TPacketData[packets.Pingreq].Get(packets.TPingreq).RawBytes)
			require.NoError(t, err)
			expect(t, w, "PINGRESP", packets.TPacketData[packets.Pingresp].Get(packets.TPingresp).RawBytes)

			idle := goroutines()
			require.Contains(t, idle, "(*Client).Read", "the client's read goroutine")
			if tt.shallow {
				require.Equal(t, writeLoops, strings.Count(idle, "(*Client).WriteLoop"),
					"an idle client of a patched server has no WriteLoop goroutine")
			} else {
				// Looked for again for a moment: a full run of the patch
				// tests once missed it in a single look (cause not found).
				require.Eventually(t, func() bool {
					return strings.Count(goroutines(), "(*Client).WriteLoop") > writeLoops
				}, 2*time.Second, 5*time.Millisecond, "an idle client has a WriteLoop goroutine without the patch")
			}

			_, err = w.Write(packets.TPacketData[packets.Disconnect].Get(packets.TDisconnect).RawBytes)
			require.NoError(t, err)
			require.NoError(t, <-done)

			for _, event := range []string{"connect", "subscribed", "pingreq", "disconnect"} {
				st := h.stack(event)
				require.NotEmpty(t, st, "no %s event", event)
				require.Equal(t, !tt.shallow, strings.Contains(st, "(*Server).attachClient("),
					"%s handled on the read goroutine (attachClient is on its stack): %v, want %v\n%s",
					event, strings.Contains(st, "(*Server).attachClient("), !tt.shallow, st)
			}
		})
	}
}

// Patch 3: with ShallowClientStacks, packets queued for a client (here
// messages published by the inline client) are written in order by a
// goroutine started on demand, which ends when the queue is empty.
func TestPatchOutboundWrittenOnDemand(t *testing.T) {
	s, _ := newPatchServer(t, true)
	defer s.Close()
	r, w := net.Pipe()
	defer w.Close()
	done := make(chan error, 1)
	go func() { done <- s.EstablishConnection("tcp", r) }()
	_, err := w.Write(packets.TPacketData[packets.Connect].Get(packets.TConnectClean).RawBytes)
	require.NoError(t, err)
	expect(t, w, "CONNACK", packets.TPacketData[packets.Connack].Get(packets.TConnackAcceptedNoSession).RawBytes)
	_, err = w.Write(packets.TPacketData[packets.Subscribe].Get(packets.TSubscribe).RawBytes)
	require.NoError(t, err)
	expect(t, w, "SUBACK", packets.TPacketData[packets.Suback].Get(packets.TSuback).RawBytes)

	for round := 0; round < 3; round++ { // the writer ends between rounds and is started again
		const n = 50
		round := round // this module is go 1.21: one variable per loop
		go func() {
			for i := 0; i < n; i++ {
				_ = s.Publish("a/b/c", []byte(fmt.Sprintf("%d-%02d", round, i)), false, 0)
			}
		}()
		for i := 0; i < n; i++ {
			var want bytes.Buffer
			pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "a/b/c",
				Payload: []byte(fmt.Sprintf("%d-%02d", round, i)), ProtocolVersion: 4}
			require.NoError(t, pk.PublishEncode(&want))
			expect(t, w, fmt.Sprintf("round %d, PUBLISH %d", round, i), want.Bytes())
		}
		waitGoroutines(t, "(*Client).writeOutbound")
	}
	require.NoError(t, w.Close())
	require.Error(t, <-done)
}

// Patch 2: the once-a-second expiry sweeps over idle clients allocate
// nothing (they used to copy the client map, and every client's inflight
// map), and still end an expired session.
func TestPatchExpirySweepsAllocateNothing(t *testing.T) {
	s := newServer()
	defer s.Close()
	for i := 0; i < 1000; i++ {
		cl := s.NewClient(nil, "tcp", fmt.Sprintf("c%d", i), false)
		s.Clients.Add(cl)
	}
	now := time.Now().Unix()
	allocs := testing.AllocsPerRun(20, func() {
		s.clearExpiredClients(now)
		s.clearExpiredInflights(now)
	})
	require.Zero(t, allocs, "allocations per sweep of 1000 idle clients")

	gone := s.NewClient(nil, "tcp", "gone", false)
	gone.Properties.ProtocolVersion = 5
	gone.Properties.Props.SessionExpiryInterval = 1
	gone.Properties.Props.SessionExpiryIntervalFlag = true
	gone.Stop(nil) // disconnected now
	s.Clients.Add(gone)
	s.clearExpiredClients(time.Now().Unix() + 10)
	_, ok := s.Clients.Get("gone")
	require.False(t, ok, "an expired session is still a client")
	require.Equal(t, 1000, s.Clients.Len())
}

// What patch 1 costs per packet: a PINGREQ / PINGRESP round trip over
// net.Pipe, handled on the read goroutine (mochi as released) or on a
// short-lived goroutine. Compare with benchstat:
// go test -run '^$' -bench PatchPingRoundTrip -count 10 .
func BenchmarkPatchPingRoundTrip(b *testing.B) {
	for _, shallow := range []bool{false, true} {
		b.Run(fmt.Sprintf("shallow=%v", shallow), func(b *testing.B) {
			cc := NewDefaultServerCapabilities()
			s := New(&Options{Logger: logger, Capabilities: cc, ShallowClientStacks: shallow})
			_ = s.AddHook(new(AllowHook), nil)
			defer s.Close()
			r, w := net.Pipe()
			defer w.Close()
			go func() { _ = s.EstablishConnection("tcp", r) }()
			if _, err := w.Write(packets.TPacketData[packets.Connect].Get(packets.TConnectClean).RawBytes); err != nil {
				b.Fatal(err)
			}
			ack := make([]byte, 4)
			if _, err := io.ReadFull(w, ack); err != nil {
				b.Fatal(err)
			}
			ping := packets.TPacketData[packets.Pingreq].Get(packets.TPingreq).RawBytes
			resp := make([]byte, 2)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := w.Write(ping); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(w, resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Patch 1's handler pool: a handler is reused, parked handlers idle for
// longer than handlerIdle end, and Close ends them all.
func TestPatchHandlerPool(t *testing.T) {
	var p handlerPool
	ran := 0
	p.run(func() { ran++ })
	p.run(func() { ran++ })
	require.Equal(t, 2, ran)
	require.Equal(t, 1, p.size(), "sequential calls share one handler")
	p.expire(time.Now())
	require.Equal(t, 1, p.size(), "a handler parked just now is kept")
	p.expire(time.Now().Add(handlerIdle + time.Second))
	require.Equal(t, 0, p.size(), "a handler idle for longer than handlerIdle ends")
	waitGoroutines(t, "(*handler).loop")

	s, _ := newPatchServer(t, true)
	r, w := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- s.EstablishConnection("tcp", r) }()
	_, err := w.Write(packets.TPacketData[packets.Connect].Get(packets.TConnectClean).RawBytes)
	require.NoError(t, err)
	expect(t, w, "CONNACK", packets.TPacketData[packets.Connack].Get(packets.TConnackAcceptedNoSession).RawBytes)
	deadline := time.Now().Add(10 * time.Second)
	for s.handlers.size() == 0 { // parked once the read goroutine has its answer
		if time.Now().After(deadline) {
			t.Fatal("the CONNECT's handler was not parked")
		}
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, w.Close())
	require.Error(t, <-done)
	require.Positive(t, s.handlers.size(), "the handlers of the CONNECT and the end are parked")
	require.NoError(t, s.Close())
	require.Equal(t, 0, s.handlers.size(), "handlers parked after Close")
	waitGoroutines(t, "(*handler).loop")
}

// rejectHook rejects every publish and packet read, as a hook that
// answers them itself does.
type rejectHook struct {
	HookBase
	reject bool
}

func (h *rejectHook) ID() string { return "reject" }

func (h *rejectHook) Provides(b byte) bool { return b == OnPublish || b == OnPacketRead }

func (h *rejectHook) OnPublish(_ *Client, pk packets.Packet) (packets.Packet, error) {
	if h.reject {
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

func (h *rejectHook) OnPacketRead(cl *Client, pk packets.Packet) (packets.Packet, error) {
	return h.OnPublish(cl, pk)
}

// Patch 4: with debug logging off, a rejected publish or packet is not
// copied to the heap for the debug line (it was, whatever the level: a
// Packet is a large struct); with it on, the line is still written.
func TestPatchRejectedPacketsLogOnlyAtDebug(t *testing.T) {
	pk := *packets.TPacketData[packets.Publish].Get(packets.TPublishQos1).Packet
	size := unsafe.Sizeof(pk)
	for _, tc := range []struct {
		name string
		call func(h *Hooks) error
	}{
		{"OnPublish", func(h *Hooks) error { _, err := h.OnPublish(nil, pk); return err }},
		{"OnPacketRead", func(h *Hooks) error { _, err := h.OnPacketRead(nil, pk); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &Hooks{Log: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))}
			require.NoError(t, h.Add(&rejectHook{reject: true}, nil))
			const calls = 1000
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for i := 0; i < calls; i++ {
				require.ErrorIs(t, tc.call(h), packets.ErrRejectPacket)
			}
			runtime.ReadMemStats(&after)
			perCall := (after.TotalAlloc - before.TotalAlloc) / calls
			require.Less(t, perCall, uint64(size), "bytes allocated per rejected packet with debug off; a Packet is %d", size)

			var buf bytes.Buffer
			h = &Hooks{Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			require.NoError(t, h.Add(&rejectHook{reject: true}, nil))
			require.Error(t, tc.call(h))
			require.Contains(t, buf.String(), "rejected")
			require.Contains(t, buf.String(), "hook=reject")
		})
	}
}

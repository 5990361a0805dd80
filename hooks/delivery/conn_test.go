package delivery

import (
	"slices"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

func seqs(ms []inbox.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

func msgs(seqs ...uint64) []inbox.Message {
	out := make([]inbox.Message, len(seqs))
	for i, s := range seqs {
		out[i] = inbox.Message{Seq: s}
	}
	return out
}

// keepAheadLocked merges messages read past the window with what offers
// put in the tail while the read ran.
func TestKeepAhead(t *testing.T) {
	for _, tc := range []struct {
		name        string
		tail, ahead []uint64
		want        []uint64
	}{
		{"empty tail", nil, []uint64{5, 6, 7}, []uint64{5, 6, 7}},
		{"offers continuing the read stay", []uint64{8, 9}, []uint64{5, 6, 7}, []uint64{5, 6, 7, 8, 9}},
		{"offers the read covered go", []uint64{6, 7, 8}, []uint64{5, 6, 7}, []uint64{5, 6, 7, 8}},
		{"offers after a gap go: they are read from the log later", []uint64{10, 11}, []uint64{5, 6, 7}, []uint64{5, 6, 7}},
		{"a hole inside the read (a deleted message) is kept as read", nil, []uint64{5, 7, 8}, []uint64{5, 7, 8}},
		{"nothing past tailMax", seqRange(8, tailMax), []uint64{5, 6, 7}, []uint64{5, 6, 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &lane{tail: msgs(tc.tail...)}
			ahead := msgs(tc.ahead...)
			l.keepAheadLocked(ahead)
			if got := seqs(l.tail); !slices.Equal(got, tc.want) {
				t.Fatalf("tail = %v, want %v", got, tc.want)
			}
			ahead[0].Seq = 99 // the tail must not share the read's array
			if l.tail[0].Seq == 99 {
				t.Fatal("tail aliases the slice it was given")
			}
		})
	}
}

func seqRange(from uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = from + uint64(i)
	}
	return out
}

// The tail is bounded by weight as well as by count, so a client that
// never acknowledges large messages pins a bounded amount of memory; the
// weight stays in step through every change of the tail.
func TestTailBoundedByBytes(t *testing.T) {
	big := func(seq uint64) inbox.Message {
		return inbox.Message{Seq: seq, Content: string(make([]byte, 64<<10)), Extra: string(make([]byte, 64<<10))}
	}
	c := &conn{d: &connDeps{}}
	c.lanes[laneInbox] = lane{started: true, next: 1}
	l := &c.lanes[laneInbox]
	for seq := uint64(1); seq <= 10; seq++ {
		c.offer(laneInbox, big(seq))
		if l.tailBytes > tailMaxBytes {
			t.Fatalf("tail weighs %d bytes after offering seq %d, over %d", l.tailBytes, seq, tailMaxBytes)
		}
	}
	if len(l.tail) == 0 || len(l.tail) > tailMaxBytes/(128<<10) || l.tail[0].Seq != 1 {
		t.Fatalf("tail holds %v", seqs(l.tail))
	}
	check := func() {
		t.Helper()
		want := 0
		for i := range l.tail {
			want += msgBytes(&l.tail[i])
		}
		if l.tailBytes != want {
			t.Fatalf("tailBytes = %d, the tail weighs %d", l.tailBytes, want)
		}
	}
	check()
	l.takeTailLocked(l.tail[0].Seq, 1)
	check()
	var ahead []inbox.Message
	for seq := uint64(20); seq < 30; seq++ {
		ahead = append(ahead, big(seq))
	}
	l.keepAheadLocked(ahead)
	check()
	if l.tailBytes > tailMaxBytes+msgBytes(&ahead[0]) || len(l.tail) == 0 || l.tail[0].Seq != 20 {
		t.Fatalf("kept ahead: %v weighing %d", seqs(l.tail), l.tailBytes)
	}
}

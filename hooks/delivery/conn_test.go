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

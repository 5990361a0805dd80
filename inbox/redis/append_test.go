package redisstore

import (
	"strconv"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

func dmRequest(s *Store) *request {
	msgs := []inbox.Message{{UID: "bob"}, {UID: "alice"}}
	targets := []target{{uid: "bob", idx: []int{0}}, {uid: "alice", idx: []int{1}}}
	return s.newRequest(inbox.Request{Msgs: msgs}, targets)
}

// FuzzRequestRecord: a request record read back from Redis never panics
// the parser, and a record the store writes gives back its entries.
func FuzzRequestRecord(f *testing.F) {
	f.Add("00ab 1733400000000 4242 7,9", int64(1733400000000), uint64(4242), uint64(7), uint64(9))
	f.Add("x 1 1 1", int64(0), uint64(1), uint64(1), uint64(1))
	f.Add("sum 1733400000000 4242 ,", int64(-5), uint64(0), uint64(0), uint64(1<<60))
	f.Fuzz(func(t *testing.T, rec string, ms int64, id, seq1, seq2 uint64) {
		s := &Store{}
		_, _ = dmRequest(s).duplicate(rec) // any text: an error at worst

		w := dmRequest(s)
		w.out[0].Time, w.out[1].Time = ms, ms
		w.out[0].ID = strconv.FormatUint(id, 10)
		w.out[1].ID = w.out[0].ID
		w.out[0].Seq, w.out[1].Seq = seq1, seq2
		got, err := dmRequest(s).duplicate(w.record())
		if err != nil {
			t.Fatalf("record %q does not parse: %v", w.record(), err)
		}
		for i, m := range got.Msgs {
			if m.ID != w.out[i].ID || m.Time != ms || m.Seq != w.out[i].Seq || !got.Duplicate {
				t.Fatalf("entry %d = %+v, want %+v", i, m, w.out[i])
			}
		}
	})
}

package inbox

import (
	"context"
	"strconv"
	"testing"
)

// sliceStore serves Bounds and Read from a slice: enough for the search
// helpers, which use nothing else.
type sliceStore struct {
	Store // nil: other methods are not used
	msgs  []Message
	last  uint64
}

func (s *sliceStore) Bounds(context.Context, string) (uint64, uint64, error) {
	if len(s.msgs) == 0 {
		return 0, s.last, nil
	}
	return s.msgs[0].Seq, s.last, nil
}

func (s *sliceStore) Read(_ context.Context, _ string, from uint64, limit int) ([]Message, error) {
	var out []Message
	for _, m := range s.msgs {
		if m.Seq >= from && len(out) < limit {
			out = append(out, m)
		}
	}
	return out, nil
}

func TestSeqAtOrAfterIDAndFindByID(t *testing.T) {
	// Seqs 3..40 held except the multiples of 7 (deleted); ids = 1000 + 10*seq.
	s := &sliceStore{last: 42}
	for seq := uint64(3); seq <= 40; seq++ {
		if seq%7 != 0 {
			s.msgs = append(s.msgs, Message{Seq: seq, ID: strconv.FormatUint(1000+10*seq, 10)})
		}
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		id      string
		wantSeq uint64
		found   bool
	}{
		{"exact", "1050", 5, true},
		{"first", "1030", 3, true},
		{"last held", "1400", 40, true},
		{"between two", "1055", 6, false},
		{"deleted one", "1070", 8, false},
		{"below all", "999", 3, false},
		{"above all", "99999", 43, false},
		{"longer id sorts higher", "10000", 43, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seq, err := SeqAtOrAfterID(ctx, s, "u", tc.id)
			if err != nil || seq != tc.wantSeq {
				t.Fatalf("SeqAtOrAfterID(%s) = %d, %v; want %d", tc.id, seq, err, tc.wantSeq)
			}
			m, ok, err := FindByID(ctx, s, "u", tc.id)
			if err != nil || ok != tc.found || (ok && m.ID != tc.id) {
				t.Fatalf("FindByID(%s) = %+v, %v, %v", tc.id, m, ok, err)
			}
		})
	}
	if _, ok, _ := FindByID(ctx, s, "u", "not-an-id"); ok {
		t.Fatal("invalid id found")
	}
	if seq, _ := SeqAtOrAfterID(ctx, &sliceStore{}, "u", "5"); seq != 1 {
		t.Fatalf("empty inbox: %d", seq)
	}
}

func TestCompareIDs(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1", "2", -1}, {"10", "9", 1}, {"382697444573446144", "382697444573446144", 0},
		{"999999999999999999", "1000000000000000000", -1},
	} {
		if got := CompareIDs(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareIDs(%s, %s) = %d", tc.a, tc.b, got)
		}
	}
}

package delivery

import "testing"

func TestWindow(t *testing.T) {
	type step struct {
		ack       uint16 // the PUBACK's packet id
		ok        bool   // ack's answer
		through   uint64 // advance's answer
		n         int
		sizeAfter int
	}
	for _, tt := range []struct {
		name  string
		steps []step
	}{
		{"in order", []step{
			{ack: 101, ok: true, through: 1, n: 1, sizeAfter: 2},
			{ack: 102, ok: true, through: 2, n: 1, sizeAfter: 1},
			{ack: 103, ok: true, through: 3, n: 1, sizeAfter: 0},
		}},
		{"out of order: the position waits for the oldest", []step{
			{ack: 103, ok: true, sizeAfter: 3},
			{ack: 102, ok: true, sizeAfter: 3},
			{ack: 101, ok: true, through: 3, n: 3, sizeAfter: 0},
		}},
		{"deny: an unknown id moves nothing", []step{
			{ack: 999, ok: false, sizeAfter: 3},
			{ack: 101, ok: true, through: 1, n: 1, sizeAfter: 2},
		}},
		{"deny: a repeated PUBACK counts once", []step{
			{ack: 102, ok: true, sizeAfter: 3},
			{ack: 102, ok: false, sizeAfter: 3},
			{ack: 101, ok: true, through: 2, n: 2, sizeAfter: 1},
			{ack: 101, ok: false, sizeAfter: 1},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var w window
			for i, seq := range []uint64{1, 2, 3} {
				w.add(seq, uint16(101+i))
			}
			for i, s := range tt.steps {
				if ok := w.ack(s.ack); ok != s.ok {
					t.Fatalf("step %d: ack(%d) = %v, want %v", i, s.ack, ok, s.ok)
				}
				through, n := w.advance()
				if through != s.through || n != s.n || w.size() != s.sizeAfter {
					t.Fatalf("step %d: advance = %d, %d with size %d, want %d, %d with size %d",
						i, through, n, w.size(), s.through, s.n, s.sizeAfter)
				}
			}
		})
	}
}

func TestWindowReset(t *testing.T) {
	var w window
	w.add(7, 1)
	w.add(8, 2)
	w.add(9, 3)
	w.ack(2)
	if n := w.reset(); n != 2 || w.size() != 0 {
		t.Fatalf("reset = %d with size %d, want 2 unacknowledged and an empty window", n, w.size())
	}
	if through, n := w.advance(); through != 0 || n != 0 {
		t.Fatalf("advance of an empty window = %d, %d", through, n)
	}
}

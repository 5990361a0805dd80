package delivery

// window is what a lane has sent at QoS 1 and not yet seen acknowledged,
// in Seq order. PUBACKs may come in any order; the lane's position moves
// only over the acknowledged prefix, so a device that reconnects resumes
// after the last message it acknowledged together with all before it.
// It is plain data: the conn's mu guards it, and it knows nothing of MQTT.
type window struct {
	pending []unacked
}

// unacked is one message of a window: its Seq, its packet id, and whether
// its PUBACK came while an earlier one's had not.
type unacked struct {
	seq   uint64
	pid   uint16
	acked bool
}

// add puts a message just sent at the end of the window.
func (w *window) add(seq uint64, pid uint16) {
	w.pending = append(w.pending, unacked{seq: seq, pid: pid})
}

// size is how many messages the window holds, acknowledged ones waiting
// for an earlier one included: the room it leaves is what counts.
func (w *window) size() int { return len(w.pending) }

// ack marks pid acknowledged. It reports false when no unacknowledged
// message of the window has that id (another lane's, mochi's, a repeat).
func (w *window) ack(pid uint16) bool {
	for i := range w.pending {
		if w.pending[i].pid == pid && !w.pending[i].acked {
			w.pending[i].acked = true
			return true
		}
	}
	return false
}

// advance drops the acknowledged prefix and returns the highest Seq in it;
// n is how many it dropped (0: the oldest message is still unacknowledged).
func (w *window) advance() (through uint64, n int) {
	for n < len(w.pending) && w.pending[n].acked {
		n++
	}
	if n == 0 {
		return 0, 0
	}
	through = w.pending[n-1].seq
	w.pending = append(w.pending[:0], w.pending[n:]...)
	return through, n
}

// reset empties the window and returns how many of its messages were
// never acknowledged.
func (w *window) reset() (unackedN int) {
	for _, p := range w.pending {
		if !p.acked {
			unackedN++
		}
	}
	w.pending = nil
	return unackedN
}

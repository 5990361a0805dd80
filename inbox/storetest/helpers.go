package storetest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

func mustAppend(t *testing.T, s inbox.Store, msgs ...inbox.Message) []inbox.Message {
	t.Helper()
	got, err := s.Append(context.Background(), msgs)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if len(got) != len(msgs) {
		t.Fatalf("Append of %d entries returned %d", len(msgs), len(got))
	}
	return got
}

func mustRead(t *testing.T, s inbox.Store, uid string) []inbox.Message {
	t.Helper()
	got, err := s.Read(context.Background(), uid, 0, 1<<20)
	if err != nil {
		t.Fatalf("Read(%q): %v", uid, err)
	}
	return got
}

// parseID checks that id is a decimal uint64, the format all stores share.
func parseID(t *testing.T, id string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		t.Fatalf("message id %q is not a decimal uint64: %v", id, err)
	}
	return n
}

// checkInbox reads all of uid's inbox and checks it holds n messages with
// Seqs 1..n and strictly increasing ids.
func checkInbox(t *testing.T, s inbox.Store, uid string, n int) []inbox.Message {
	t.Helper()
	got := mustRead(t, s, uid)
	if len(got) != n {
		t.Fatalf("inbox %q holds %d messages, want %d", uid, len(got), n)
	}
	var prev uint64
	for i, m := range got {
		if m.UID != uid {
			t.Fatalf("inbox %q message %d has uid %q", uid, i, m.UID)
		}
		if m.Seq != uint64(i+1) {
			t.Fatalf("inbox %q message %d has Seq %d, want %d (dense from 1)", uid, i, m.Seq, i+1)
		}
		id := parseID(t, m.ID)
		if i > 0 && id <= prev {
			t.Fatalf("inbox %q seq %d: id %d not greater than previous %d", uid, m.Seq, id, prev)
		}
		prev = id
	}
	checkBounds(t, s, uid, min(1, uint64(n)), uint64(n))
	return got
}

func checkBounds(t *testing.T, s inbox.Store, uid string, first, last uint64) {
	t.Helper()
	f, l, err := s.Bounds(context.Background(), uid)
	if err != nil {
		t.Fatalf("Bounds(%q): %v", uid, err)
	}
	if f != first || l != last {
		t.Errorf("Bounds(%q) = %d, %d, want %d, %d", uid, f, l, first, last)
	}
}

func checkCursor(t *testing.T, s inbox.Store, uid, device string, seq uint64, ok bool) {
	t.Helper()
	got, gotOK, err := s.Cursor(context.Background(), uid, device)
	if err != nil {
		t.Fatalf("Cursor(%q, %q): %v", uid, device, err)
	}
	if got != seq || gotOK != ok {
		t.Errorf("Cursor(%q, %q) = %d, %v, want %d, %v", uid, device, got, gotOK, seq, ok)
	}
}

// dropLog records OnDrop calls; stores may call OnDrop from any goroutine.
type dropLog struct {
	mu    sync.Mutex
	total map[string]int // uid + " " + reason -> messages dropped
}

func (d *dropLog) record(uid string, n int, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.total == nil {
		d.total = make(map[string]int)
	}
	d.total[uid+" "+reason] += n
}

func (d *dropLog) count(uid, reason string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total[uid+" "+reason]
}

// show renders a message one field per line so a diff is readable.
func show(m inbox.Message) string {
	return fmt.Sprintf("  UID %q Seq %d ID %q Time %d Kind %v\n  Peer %q Nickname %q Avatar %q\n  Content %.80q\n  Extra %q CID %q MsgType %d Event %q Ref %q",
		m.UID, m.Seq, m.ID, m.Time, m.Kind, m.Peer, m.Nickname, m.Avatar, m.Content, m.Extra, m.CID, m.MsgType, m.Event, m.Ref)
}

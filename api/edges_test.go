package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

// Edges where the API once did something else than asked.
func TestEdges(t *testing.T) {
	f := newFixture(t, 0)
	admin := basic(adminName, adminPassword)
	tok := f.userToken(t, bob)

	// An empty recipient list is refused, not read as "everyone".
	before := f.deliv.len()
	f.wantError(t, f.do(t, "POST", "/api/v1/notices", admin, `{"uids":[],"content":"to nobody"}`), http.StatusBadRequest, "missing_field")
	if f.deliv.len() != before {
		t.Error("a notice with an empty uids list was stored")
	}
	if got, _ := f.store.Read(context.Background(), inbox.BroadcastInbox, 0, 10); len(got) != 0 {
		t.Errorf("the broadcast log holds %d notices after an empty uids list", len(got))
	}

	// Trailing data after the JSON object is refused, and nothing is done.
	f.wantError(t, f.do(t, "POST", "/api/v1/kick", admin, `{"uid":10021} {"uid":10001}`), http.StatusBadRequest, "bad_json")
	if k := f.conns.recorded(); len(k) != 0 {
		t.Errorf("kicks after a body with trailing data: %v", k)
	}

	// The Bearer scheme is case-insensitive.
	wantStatus(t, f.do(t, "GET", "/api/v1/unread", authorization("bearer "+tok), ""), http.StatusOK)

	// A msgid with leading zeros is not a msgid.
	f.wantError(t, f.do(t, "GET", "/api/v1/conversations/10001/messages?before=0042", bearer(tok), ""), http.StatusBadRequest, "bad_field")

	// Marking notices read up to the largest id marks them all.
	f.do(t, "POST", "/api/v1/notices", admin, `{"uid":10021,"content":"n"}`)
	wantOK(t, f.do(t, "POST", "/api/v1/notices/read", bearer(tok), `{"msgid":"18446744073709551615"}`), http.StatusOK)
	if mark, err := f.store.ReadMark(context.Background(), bob, inbox.NoticeThread); err != nil || mark == 0 {
		t.Errorf("notice read mark after marking up to the largest id = %d, %v, want the notice's seq", mark, err)
	}
}

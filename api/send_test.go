package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

// POST /api/v1/messages sends a direct message as the uid named by from,
// for admin and service accounts only: it is stored for both parties like
// an im/sendmsg of from (the recipient's copy from from, the sender's copy
// with the cid), answered with the msgid, deduplicated by cid, and logged
// with the account that sent it. Everything refused has no effect.
func TestSendMessage(t *testing.T) {
	f := newFixture(t, 0)
	service := basic(serviceName, servicePassword)
	long := strings.Repeat("x", maxContent+1)
	for _, tc := range []struct {
		name   string
		cred   cred
		body   string
		status int // 0: sent
		code   string
	}{
		{"service account, numeric uids", service, `{"from":10001,"uid":10021,"msg":"hi","extra":"e","cid":"c-1"}`, 0, ""},
		{"admin account, string uids", basic(adminName, adminPassword), `{"from":"10001","uid":"10031","msg":"hi"}`, 0, ""},
		{"admin token", bearer(f.adminToken(t, "20001")), `{"from":10001,"uid":10041,"msg":"hi"}`, 0, ""},
		{"deny: user token, even as itself", bearer(f.userToken(t, alice)), `{"from":10001,"uid":10021,"msg":"hi"}`, http.StatusForbidden, "forbidden"},
		{"deny: user-role account", basic(opsName, opsPassword), `{"from":10001,"uid":10021,"msg":"hi"}`, http.StatusForbidden, "forbidden"},
		{"deny: no credentials", nil, `{"from":10001,"uid":10021,"msg":"hi"}`, http.StatusUnauthorized, "unauthorized"},
		{"deny: no from", service, `{"uid":10021,"msg":"hi"}`, http.StatusBadRequest, "missing_field"},
		{"deny: from null", service, `{"from":null,"uid":10021,"msg":"hi"}`, http.StatusBadRequest, "missing_field"},
		{"deny: from not a uid", service, `{"from":"a b","uid":10021,"msg":"hi"}`, http.StatusBadRequest, "bad_uid"},
		{"deny: from negative", service, `{"from":-1,"uid":10021,"msg":"hi"}`, http.StatusBadRequest, "bad_uid"},
		{"deny: no uid", service, `{"from":10001,"msg":"hi"}`, http.StatusBadRequest, "missing_field"},
		{"deny: to itself", service, `{"from":10021,"uid":10021,"msg":"hi"}`, http.StatusBadRequest, "bad_uid"},
		{"deny: empty msg", service, `{"from":10001,"uid":10021,"msg":""}`, http.StatusBadRequest, "empty_message"},
		{"deny: msg too long", service, `{"from":10001,"uid":10021,"msg":"` + long + `"}`, http.StatusRequestEntityTooLarge, "too_large"},
		{"deny: extra too long", service, `{"from":10001,"uid":10021,"msg":"m","extra":"` + long + `"}`, http.StatusRequestEntityTooLarge, "too_large"},
		{"deny: cid too long", service, `{"from":10001,"uid":10021,"msg":"m","cid":"` + strings.Repeat("c", 129) + `"}`, http.StatusRequestEntityTooLarge, "too_large"},
		{"deny: not JSON", service, `{"from":10001,`, http.StatusBadRequest, "bad_json"},
		{"deny: an array", service, `[{"from":10001,"uid":10021,"msg":"hi"}]`, http.StatusBadRequest, "bad_json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mark := f.deliv.len()
			r := f.do(t, "POST", "/api/v1/messages", tc.cred, tc.body)
			if tc.status != 0 {
				f.wantError(t, r, tc.status, tc.code)
				if got := f.deliv.since(mark); len(got) != 0 {
					t.Fatalf("refused message handed on %+v", got)
				}
				return
			}
			msgid := wantSent(t, r, http.StatusOK)
			got := f.deliv.since(mark)
			if len(got) != 2 {
				t.Fatalf("handed on %+v, want the recipient's and the sender's copy", got)
			}
			in, sent := got[0], got[1]
			if in.ID != msgid || in.Kind != inbox.KindDirect || in.Peer != alice || in.Content != "hi" ||
				sent.ID != msgid || sent.Kind != inbox.KindSent || sent.UID != alice || sent.Peer != in.UID {
				t.Fatalf("stored %+v and %+v, want a message from %s with msgid %s", in, sent, alice, msgid)
			}
		})
	}

	// The audit line names the account, the sender, the recipient and the msgid.
	lines := f.logs.Lines("message sent for a user", "account="+serviceName, "from="+alice, "to="+bob)
	if len(lines) != 1 || !strings.Contains(lines[0], "msgid=") {
		t.Fatalf("audit log lines %q, want one for the service account's send", lines)
	}

	// A resend with the same cid, recipient and content is the same message.
	first := f.thread(t, bob, alice)
	mark := f.deliv.len()
	r := f.do(t, "POST", "/api/v1/messages", service, `{"from":10001,"uid":10021,"msg":"hi","extra":"e","cid":"c-1"}`)
	if id := wantSent(t, r, http.StatusOK); id != first[0].ID {
		t.Fatalf("resend answered %s, want the first msgid %s", id, first[0].ID)
	}
	if got := f.deliv.since(mark); len(got) != 0 || len(f.thread(t, bob, alice)) != len(first) {
		t.Fatalf("a resend was stored again: %+v", got)
	}
}

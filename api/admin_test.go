package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

// uidRange returns n uids from first on, as strings and as a JSON list of numbers.
func uidRange(first, n int) ([]string, string) {
	uids := make([]string, n)
	nums := make([]string, n)
	for i := range n {
		uids[i] = strconv.Itoa(first + i)
		nums[i] = uids[i]
	}
	return uids, "[" + strings.Join(nums, ",") + "]"
}

// POST /api/v1/notices stores a notice in each recipient's inbox, or in
// the broadcast log when there are none, and hands it to the delivery
// side; refused notices store nothing anywhere.
func TestSendNotice(t *testing.T) {
	f := newFixture(t, 0)
	admin := basic(adminName, adminPassword)
	thousand, thousandJSON := uidRange(30000, 1000)
	_, tooManyJSON := uidRange(40000, 1001)
	watched := []string{alice, bob, carol, dave, "0", inbox.BroadcastInbox}
	for _, tc := range []struct {
		name string
		cred cred
		body string
		// accepted:
		to             []string // recipients; nil with broadcast
		broadcast      bool
		by, ref, event string
		msgtype        int
		// refused:
		status int
		code   string
	}{
		{name: "uid as a number, with msgtype, event and msgid", cred: admin,
			body: `{"uid":10021,"content":"shipped","msgtype":2,"event":"order","msgid":12345}`,
			to:   []string{bob}, by: adminName, ref: "12345", event: "order", msgtype: 2},
		{name: "uid as a string", cred: admin, body: `{"uid":"10021","content":"hi"}`, to: []string{bob}, by: adminName, ref: "0"},
		{name: "uid 0", cred: admin, body: `{"uid":0,"content":"zero"}`, to: []string{"0"}, by: adminName, ref: "0"},
		{name: "msgid as a string", cred: admin, body: `{"uid":10021,"content":"s","msgid":"legacy-1"}`, to: []string{bob}, by: adminName, ref: `"legacy-1"`},
		{name: "uids with a duplicate", cred: admin, body: `{"uids":[10001,"10021",10001],"content":"many"}`, to: []string{alice, bob}, by: adminName, ref: "0"},
		{name: "uid and uids", cred: admin, body: `{"uid":10031,"uids":[10001],"content":"both"}`, to: []string{alice, carol}, by: adminName, ref: "0"},
		{name: "to everyone", cred: admin, body: `{"content":"maintenance at 02:00","msgtype":7}`, broadcast: true, by: adminName, ref: "0", msgtype: 7},
		{name: "uid null is everyone", cred: admin, body: `{"uid":null,"content":"null uid"}`, broadcast: true, by: adminName, ref: "0"},
		{name: "service account", cred: basic(serviceName, servicePassword), body: `{"uid":10041,"content":"from the back-end"}`, to: []string{dave}, by: serviceName, ref: "0"},
		{name: "admin token", cred: bearer(f.adminToken(t, "20001")), body: `{"uids":[10041],"content":"from an operator"}`, to: []string{dave}, by: "20001", ref: "0"},
		{name: "1000 uids", cred: admin, body: `{"uids":` + thousandJSON + `,"content":"bulk"}`, to: thousand, by: adminName, ref: "0"},

		{name: "empty content", cred: admin, body: `{"uid":10021,"content":""}`, status: http.StatusBadRequest, code: "empty_message"},
		{name: "no content", cred: admin, body: `{"uid":10021}`, status: http.StatusBadRequest, code: "empty_message"},
		{name: "content over the limit", cred: admin, body: `{"uid":10021,"content":"` + strings.Repeat("x", maxContent+1) + `"}`, status: http.StatusRequestEntityTooLarge, code: "too_large"},
		{name: "uid not a uid", cred: admin, body: `{"uid":"a b","content":"c"}`, status: http.StatusBadRequest, code: "bad_uid"},
		{name: "uid empty", cred: admin, body: `{"uid":"","content":"c"}`, status: http.StatusBadRequest, code: "bad_uid"},
		{name: "uid the broadcast log", cred: admin, body: `{"uid":"$broadcast","content":"c"}`, status: http.StatusBadRequest, code: "bad_uid"},
		{name: "uid negative", cred: admin, body: `{"uid":-1,"content":"c"}`, status: http.StatusBadRequest, code: "bad_uid"},
		{name: "uid fractional", cred: admin, body: `{"uid":10021.5,"content":"c"}`, status: http.StatusBadRequest, code: "bad_uid"},
		{name: "uid with an exponent", cred: admin, body: `{"uid":1e4,"content":"c"}`, status: http.StatusBadRequest, code: "bad_uid"},
		{name: "uid over uint64", cred: admin, body: `{"uid":18446744073709551616,"content":"c"}`, status: http.StatusBadRequest, code: "bad_uid"},
		{name: "uid a boolean", cred: admin, body: `{"uid":true,"content":"c"}`, status: http.StatusBadRequest, code: "bad_uid"},
		{name: "uid an object", cred: admin, body: `{"uid":{"id":10021},"content":"c"}`, status: http.StatusBadRequest, code: "bad_uid"},
		{name: "one bad uid among good ones", cred: admin, body: `{"uids":[10001,"a b"],"content":"c"}`, status: http.StatusBadRequest, code: "bad_uid"},
		{name: "null in uids", cred: admin, body: `{"uids":[10001,null],"content":"c"}`, status: http.StatusBadRequest, code: "bad_uid"},
		{name: "1001 uids", cred: admin, body: `{"uids":` + tooManyJSON + `,"content":"c"}`, status: http.StatusRequestEntityTooLarge, code: "too_large"},
		{name: "msgid an object", cred: admin, body: `{"uid":10021,"content":"c","msgid":{"a":1}}`, status: http.StatusBadRequest, code: "bad_field"},
		{name: "msgid a boolean", cred: admin, body: `{"uid":10021,"content":"c","msgid":true}`, status: http.StatusBadRequest, code: "bad_field"},
		{name: "msgid too long", cred: admin, body: `{"uid":10021,"content":"c","msgid":"` + strings.Repeat("9", 200) + `"}`, status: http.StatusRequestEntityTooLarge, code: "too_large"},
		{name: "msgtype a string", cred: admin, body: `{"uid":10021,"content":"c","msgtype":"2"}`, status: http.StatusBadRequest, code: "bad_json"},
		{name: "uids not a list", cred: admin, body: `{"uids":"10021","content":"c"}`, status: http.StatusBadRequest, code: "bad_json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := map[string]int{}
			for _, uid := range watched {
				before[uid] = len(f.thread(t, uid, inbox.NoticeThread))
			}
			mark := f.deliv.len()
			r := f.do(t, "POST", "/api/v1/notices", tc.cred, tc.body)
			if tc.status != 0 {
				f.wantError(t, r, tc.status, tc.code)
				for _, uid := range watched {
					if n := len(f.thread(t, uid, inbox.NoticeThread)); n != before[uid] {
						t.Fatalf("refused notice stored in %s", uid)
					}
				}
				if got := f.deliv.since(mark); len(got) != 0 {
					t.Fatalf("refused notice handed on %+v", got)
				}
				return
			}
			msgid := wantSent(t, r, http.StatusAccepted)
			to := tc.to
			if tc.broadcast {
				to = []string{inbox.BroadcastInbox}
			}
			for _, uid := range watched {
				want := before[uid]
				if slices.Contains(to, uid) {
					want++
				}
				if n := len(f.thread(t, uid, inbox.NoticeThread)); n != want {
					t.Fatalf("%s holds %d notices, want %d", uid, n, want)
				}
			}
			handed := f.deliv.since(mark)
			var handedTo []string
			for _, m := range handed {
				handedTo = append(handedTo, m.UID)
			}
			slices.Sort(handedTo)
			if wantTo := slices.Sorted(slices.Values(to)); !slices.Equal(handedTo, wantTo) {
				t.Fatalf("handed on to %d inboxes %.80v, want %.80v", len(handedTo), handedTo, wantTo)
			}
			for _, uid := range to {
				got := f.thread(t, uid, inbox.NoticeThread)
				if len(got) == 0 {
					t.Fatalf("no notice in %s", uid)
				}
				m := got[0]
				if m.ID != msgid {
					t.Fatalf("%s holds notice %s, the answer said %s", uid, m.ID, msgid)
				}
				if m.Kind != inbox.KindNotice || m.Peer != tc.by || m.Ref != tc.ref || m.Event != tc.event || m.MsgType != tc.msgtype || !strings.Contains(tc.body, `"`+m.Content+`"`) {
					t.Fatalf("%s's newest notice %+v, want by %q ref %q event %q msgtype %d", uid, m, tc.by, tc.ref, tc.event, tc.msgtype)
				}
			}
			// Users read what was stored through the API.
			reader := bob
			if !tc.broadcast {
				reader = to[0]
			}
			if p := f.notices(t, reader, "limit=1"); len(p.Notices) != 1 || p.Notices[0].MsgID != handed[0].ID || p.Notices[0].Broadcast != tc.broadcast {
				t.Fatalf("%s's newest notice %+v, want %s", reader, p.Notices, handed[0].ID)
			}
		})
	}
}

// GET /api/v1/online reports the connections of a uid on this node.
func TestOnline(t *testing.T) {
	f := newFixture(t, 0)
	f.conns.online[bob] = 2
	f.conns.online["svc.worker-1"] = 1
	for _, tc := range []struct {
		name, query string
		want        string // the answer, or "" for a 400 bad_uid
	}{
		{"online on two devices", "uid=10021", `{"devices":2,"online":true,"uid":"10021"}`},
		{"offline", "uid=10001", `{"devices":0,"online":false,"uid":"10001"}`},
		{"uid with letters and dots", "uid=svc.worker-1", `{"devices":1,"online":true,"uid":"svc.worker-1"}`},
		{"no uid", "", ""},
		{"empty uid", "uid=", ""},
		{"uid not a uid", "uid=a%2Fb", ""},
		{"uid too long", "uid=" + strings.Repeat("1", 65), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, "GET", "/api/v1/online?"+tc.query, basic(adminName, adminPassword), "")
			if tc.want == "" {
				f.wantError(t, r, http.StatusBadRequest, "bad_uid")
				return
			}
			wantStatus(t, r, http.StatusOK)
			if got := strings.TrimSpace(string(r.raw)); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
	if got := f.conns.recorded(); len(got) != 0 {
		t.Fatalf("online kicked %+v", got)
	}
}

// POST /api/v1/kick disconnects a uid's connections, with a default reason.
func TestKick(t *testing.T) {
	f := newFixture(t, 0)
	f.conns.online[bob] = 2
	const defaultReason = "logged out by an administrator"
	for _, tc := range []struct {
		name, body string
		want       string // the answer, or "" when refused
		kick       kick
		code       string
	}{
		{"uid as a number", `{"uid":10021}`, `{"kicked":2,"uid":"10021"}`, kick{bob, defaultReason}, ""},
		{"uid as a string, with a reason", `{"uid":"10021","reason":"password changed"}`, `{"kicked":2,"uid":"10021"}`, kick{bob, "password changed"}, ""},
		{"empty reason", `{"uid":10021,"reason":""}`, `{"kicked":2,"uid":"10021"}`, kick{bob, defaultReason}, ""},
		{"offline uid", `{"uid":10001}`, `{"kicked":0,"uid":"10001"}`, kick{alice, defaultReason}, ""},
		{"no uid", `{"reason":"r"}`, "", kick{}, "bad_uid"},
		{"uid null", `{"uid":null}`, "", kick{}, "bad_uid"},
		{"uid not a uid", `{"uid":"a/b"}`, "", kick{}, "bad_uid"},
		{"uid negative", `{"uid":-10021}`, "", kick{}, "bad_uid"},
		{"uid a list", `{"uid":[10021]}`, "", kick{}, "bad_uid"},
		{"reason not a string", `{"uid":10021,"reason":1}`, "", kick{}, "bad_json"},
		{"null body", `null`, "", kick{}, "bad_uid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kicks := len(f.conns.recorded())
			r := f.do(t, "POST", "/api/v1/kick", basic(adminName, adminPassword), tc.body)
			got := f.conns.recorded()[kicks:]
			if tc.want == "" {
				f.wantError(t, r, http.StatusBadRequest, tc.code)
				if len(got) != 0 {
					t.Fatalf("refused kick kicked %+v", got)
				}
				return
			}
			wantStatus(t, r, http.StatusOK)
			if body := strings.TrimSpace(string(r.raw)); body != tc.want {
				t.Fatalf("got %s, want %s", body, tc.want)
			}
			if len(got) != 1 || got[0] != tc.kick {
				t.Fatalf("kicks %+v, want %+v", got, tc.kick)
			}
		})
	}
	if logs := f.logs.String(); !strings.Contains(logs, "kicked by api") || !strings.Contains(logs, fmt.Sprintf("by=%s", adminName)) {
		t.Fatalf("kicks not logged with who kicked:\n%s", logs)
	}
}

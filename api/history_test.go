package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/api"
	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/messaging"
)

// conversations reads GET /api/v1/conversations as uid.
func (f *fixture) conversations(t *testing.T, uid string) []api.Conversation {
	t.Helper()
	r := f.do(t, "GET", "/api/v1/conversations", bearer(f.userToken(t, uid)), "")
	wantStatus(t, r, http.StatusOK)
	var body struct {
		Conversations []api.Conversation `json:"conversations"`
	}
	r.decode(t, &body)
	return body.Conversations
}

// messagesPage is one answer of GET .../messages.
type messagesPage struct {
	Messages []api.Message `json:"messages"`
	Next     string        `json:"next"`
}

// messages reads one page of uid's conversation with peer.
func (f *fixture) messages(t *testing.T, uid, peer, query string) messagesPage {
	t.Helper()
	path := "/api/v1/conversations/" + peer + "/messages"
	if query != "" {
		path += "?" + query
	}
	r := f.do(t, "GET", path, bearer(f.userToken(t, uid)), "")
	wantStatus(t, r, http.StatusOK)
	var p messagesPage
	r.decode(t, &p)
	if p.Messages == nil {
		t.Fatalf("messages is null, want a list: %s", r.raw)
	}
	return p
}

// noticesPage is one answer of GET /api/v1/notices.
type noticesPage struct {
	Notices []api.Notice `json:"notices"`
	Next    string       `json:"next"`
}

func (f *fixture) notices(t *testing.T, uid, query string) noticesPage {
	t.Helper()
	path := "/api/v1/notices"
	if query != "" {
		path += "?" + query
	}
	r := f.do(t, "GET", path, bearer(f.userToken(t, uid)), "")
	wantStatus(t, r, http.StatusOK)
	var p noticesPage
	r.decode(t, &p)
	if p.Notices == nil {
		t.Fatalf("notices is null, want a list: %s", r.raw)
	}
	return p
}

// The conversation list: one entry per peer, newest first, with the last
// message as the caller sees it and the unread count; notices are not a
// conversation.
func TestConversations(t *testing.T) {
	f := newFixture(t, 0)
	if r := f.do(t, "GET", "/api/v1/conversations", bearer(f.userToken(t, dave)), ""); strings.TrimSpace(string(r.raw)) != `{"conversations":[],"next":""}` {
		t.Fatalf("no conversations: %d %s", r.status, r.raw)
	}
	f.send(t, alice, bob, "a1")
	a2 := f.send(t, alice, bob, "<b>a2 & 你好</b>")
	b1 := f.send(t, bob, carol, "b1")
	f.notice(t, messaging.Notice{UIDs: []string{bob}, Content: "shipped"})
	f.notice(t, messaging.Notice{Content: "to everyone"})

	got := f.conversations(t, bob)
	if len(got) != 2 {
		t.Fatalf("bob has %d conversations, want 2: %+v", len(got), got)
	}
	for i := range got {
		if got[i].Last.Time <= 0 || got[i].Last.TS != got[i].Last.Time {
			t.Fatalf("conversation %s: last message without a time, or ts unlike time: %+v", got[i].Peer, got[i].Last)
		}
		got[i].Last.Time, got[i].Last.TS = 0, 0
	}
	want := []api.Conversation{
		{Peer: carol, Unread: 0, Last: api.Message{MsgID: b1, From: bob, To: carol, Content: "b1", Extra: "x-b1", CID: "cid-b1"}},
		{Peer: alice, Unread: 2, Last: api.Message{MsgID: a2, From: alice, To: bob, Content: "<b>a2 & 你好</b>", Extra: "x-<b>a2 & 你好</b>",
			Nickname: "nick-" + alice, Avatar: "https://a.example/" + alice + ".png"}},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("bob's conversations\n got %+v\nwant %+v", got, want)
	}
	// The other side of the same conversation.
	if got := f.conversations(t, alice); len(got) != 1 || got[0].Peer != bob || got[0].Last.MsgID != a2 || got[0].Last.From != alice || got[0].Unread != 0 || got[0].Last.CID == "" {
		t.Fatalf("alice's conversations %+v", got)
	}
	// HTML is not escaped in the JSON.
	r := f.do(t, "GET", "/api/v1/conversations", bearer(f.userToken(t, bob)), "")
	if !strings.Contains(string(r.raw), `"ct":"<b>a2 & 你好</b>"`) {
		t.Fatalf("content escaped: %s", r.raw)
	}
}

// A message shows who sent it to whom: the recipient's copy carries the
// sender's profile, the sender's copy the client id.
func TestMessages_SenderAndRecipientViews(t *testing.T) {
	f := newFixture(t, 0)
	id := f.send(t, alice, bob, "hello")
	mine := f.messages(t, alice, bob, "")
	theirs := f.messages(t, bob, alice, "")
	if len(mine.Messages) != 1 || len(theirs.Messages) != 1 || mine.Next != "" || theirs.Next != "" {
		t.Fatalf("alice %+v, bob %+v", mine, theirs)
	}
	sent, recv := mine.Messages[0], theirs.Messages[0]
	if sent.Time <= 0 || sent.Time != recv.Time || sent.TS != sent.Time || recv.TS != recv.Time {
		t.Fatalf("times %d and %d, ts %d and %d", sent.Time, recv.Time, sent.TS, recv.TS)
	}
	sent.Time, recv.Time, sent.TS, recv.TS = 0, 0, 0, 0
	if want := (api.Message{MsgID: id, From: alice, To: bob, Content: "hello", Extra: "x-hello", CID: "cid-hello"}); sent != want {
		t.Fatalf("sender's view %+v, want %+v", sent, want)
	}
	if want := (api.Message{MsgID: id, From: alice, To: bob, Content: "hello", Extra: "x-hello", Nickname: "nick-" + alice, Avatar: "https://a.example/" + alice + ".png"}); recv != want {
		t.Fatalf("recipient's view %+v, want %+v", recv, want)
	}
	// A third user sees nothing of it.
	if p := f.messages(t, carol, alice, ""); len(p.Messages) != 0 {
		t.Fatalf("carol sees %+v", p.Messages)
	}
	if p := f.messages(t, carol, bob, ""); len(p.Messages) != 0 {
		t.Fatalf("carol sees %+v", p.Messages)
	}
}

// 120 messages page back as 50, 50, 20, newest first, without gaps or
// repeats, while new messages keep arriving.
func TestMessages_Paging(t *testing.T) {
	f := newFixture(t, 0)
	const n = 120
	sent := make([]string, n)
	for i := range n {
		sent[i] = f.send(t, alice, bob, fmt.Sprintf("m%d", i))
	}
	var pages []int
	var got []string
	before := ""
	for range 10 {
		q := ""
		if before != "" {
			q = "before=" + before
		}
		p := f.messages(t, bob, alice, q)
		pages = append(pages, len(p.Messages))
		for _, m := range p.Messages {
			got = append(got, m.MsgID)
			if want := fmt.Sprintf("m%d", n-len(got)); m.Content != want {
				t.Fatalf("message %d is %q, want %q", len(got), m.Content, want)
			}
		}
		if len(p.Messages) == api.PageSize && p.Next != p.Messages[len(p.Messages)-1].MsgID {
			t.Fatalf("full page: next %q, want the last msgid %q", p.Next, p.Messages[len(p.Messages)-1].MsgID)
		}
		// A new message between pages must not disturb paging.
		f.send(t, alice, bob, "late")
		if before = p.Next; before == "" {
			break
		}
	}
	if fmt.Sprint(pages) != "[50 50 20]" {
		t.Fatalf("pages %v, want [50 50 20]", pages)
	}
	want := slices.Clone(sent)
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Fatalf("paged msgids differ from the sent ones, newest first")
	}
}

// The limit and before parameters: limit is clamped to 50; bad values are
// refused with 400 bad_field.
func TestMessages_PageParameters(t *testing.T) {
	f := newFixture(t, 0)
	const n = 60
	newest := make([]string, n) // newest first
	for i := range n {
		newest[n-1-i] = f.send(t, alice, bob, fmt.Sprintf("m%d", i))
	}
	for _, tc := range []struct {
		name, query string
		want        []string // msgids
		next        string
	}{
		{"no parameters", "", newest[:50], newest[49]},
		{"limit over the page size", "limit=500", newest[:50], newest[49]},
		{"limit at the page size", "limit=50", newest[:50], newest[49]},
		{"small limit", "limit=7", newest[:7], newest[6]},
		{"limit 1", "limit=1", newest[:1], newest[0]},
		{"empty before", "before=&limit=3", newest[:3], newest[2]},
		{"before the newest", "before=" + newest[0] + "&limit=3", newest[1:4], newest[3]},
		{"last partial page", "before=" + newest[49], newest[50:], ""},
		{"exactly the rest", "before=" + newest[49] + "&limit=10", newest[50:], newest[59]},
		{"before the oldest", "before=" + newest[n-1], []string{}, ""},
		{"before an id above all", "before=18446744073709551615&limit=2", newest[:2], newest[1]},
		{"before an id below all", "before=1", []string{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := f.messages(t, bob, alice, tc.query)
			if got := ids(p.Messages); !slices.Equal(got, tc.want) || p.Next != tc.next {
				t.Fatalf("got %d messages %v next %q\nwant %d messages %v next %q", len(got), got, p.Next, len(tc.want), tc.want, tc.next)
			}
		})
	}
	for _, tc := range []struct {
		name, path, code string
	}{
		{"limit 0", "/api/v1/conversations/" + alice + "/messages?limit=0", "bad_field"},
		{"negative limit", "/api/v1/conversations/" + alice + "/messages?limit=-5", "bad_field"},
		{"fractional limit", "/api/v1/conversations/" + alice + "/messages?limit=1.5", "bad_field"},
		{"limit not a number", "/api/v1/conversations/" + alice + "/messages?limit=ten", "bad_field"},
		{"before not a msgid", "/api/v1/conversations/" + alice + "/messages?before=abc", "bad_field"},
		{"negative before", "/api/v1/conversations/" + alice + "/messages?before=-1", "bad_field"},
		{"before over uint64", "/api/v1/conversations/" + alice + "/messages?before=18446744073709551616", "bad_field"},
		{"notices: limit 0", "/api/v1/notices?limit=0", "bad_field"},
		{"notices: before not a msgid", "/api/v1/notices?before=x", "bad_field"},
		{"peer not a uid", "/api/v1/conversations/a%20b/messages", "bad_uid"},
		{"peer is the notices thread", "/api/v1/conversations/%24notices/messages", "bad_uid"},
		{"peer is the broadcast log", "/api/v1/conversations/%24broadcast/messages", "bad_uid"},
		{"peer too long", "/api/v1/conversations/" + strings.Repeat("1", 65) + "/messages", "bad_uid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.wantError(t, f.do(t, "GET", tc.path, bearer(f.userToken(t, bob)), ""), http.StatusBadRequest, tc.code)
		})
	}
}

// Unread counts per peer, per notice type and for broadcasts, and how
// marking a conversation or the notices read changes them.
func TestUnreadAndMarkRead(t *testing.T) {
	f := newFixture(t, 0)
	empty := api.Unread{Peers: map[string]int{}, Notices: map[string]int{}}
	if got := f.unread(t, dave); !equalUnread(got, empty) {
		t.Fatalf("nothing received: %+v", got)
	}
	a1 := f.send(t, alice, bob, "a1")
	a2 := f.send(t, alice, bob, "a2")
	f.send(t, alice, bob, "a3")
	c1 := f.send(t, carol, bob, "c1")
	f.send(t, bob, alice, "reply") // sent messages are never unread
	n1 := f.notice(t, messaging.Notice{UIDs: []string{bob}, Content: "n1", MsgType: 2})
	b1 := f.notice(t, messaging.Notice{Content: "b1"})
	f.notice(t, messaging.Notice{UIDs: []string{bob}, Content: "n2", MsgType: 5})
	b2 := f.notice(t, messaging.Notice{Content: "b2"})

	check := func(t *testing.T, uid string, want api.Unread) {
		t.Helper()
		if got := f.unread(t, uid); !equalUnread(got, want) {
			t.Fatalf("%s's unread\n got %+v\nwant %+v", uid, got, want)
		}
	}
	check(t, bob, api.Unread{Peers: map[string]int{alice: 3, carol: 1}, Notices: map[string]int{"2": 1, "5": 1}, Broadcast: 2, Total: 8})
	check(t, alice, api.Unread{Peers: map[string]int{bob: 1}, Notices: map[string]int{}, Broadcast: 2, Total: 3})

	// Mark read up to a2: alice gets a receipt, bob's devices the new total.
	mark := f.deliv.len()
	wantOK(t, f.do(t, "POST", "/api/v1/conversations/"+alice+"/read", bearer(f.userToken(t, bob)), `{"msgid":"`+a2+`"}`), http.StatusOK)
	check(t, bob, api.Unread{Peers: map[string]int{alice: 1, carol: 1}, Notices: map[string]int{"2": 1, "5": 1}, Broadcast: 2, Total: 6})
	receipts := f.deliv.since(mark)
	if len(receipts) != 2 || receipts[0].UID != alice || receipts[0].Kind != inbox.KindReceipt || receipts[0].Peer != bob || receipts[0].Ref != a2 {
		t.Fatalf("handed on %+v, want one receipt for alice of %s, then bob's read sync", receipts, a2)
	}
	// The inbox's unread total, as in the push events: 6 less the 2
	// notices to everyone, which live in the broadcast log.
	if s := receipts[1]; s.UID != bob || s.Kind != inbox.KindReadSync || s.Peer != alice || s.Ref != a2 || s.MsgType != 4 {
		t.Fatalf("read sync %+v, want bob's of %s with unread 4", s, a2)
	}
	if in := f.inboxOf(t, alice); in[len(in)-1].Kind != inbox.KindReceipt || in[len(in)-1].Ref != a2 {
		t.Fatalf("alice's inbox ends with %+v, want the receipt", in[len(in)-1])
	}
	if c := f.conversations(t, bob); len(c) != 2 || c[0].Peer != alice || c[0].Unread != 1 || c[1].Peer != carol || c[1].Unread != 1 {
		t.Fatalf("conversations after mark read: %+v", c)
	}
	// Marks never go back.
	wantOK(t, f.do(t, "POST", "/api/v1/conversations/"+alice+"/read", bearer(f.userToken(t, bob)), `{"msgid":"`+a1+`"}`), http.StatusOK)
	check(t, bob, api.Unread{Peers: map[string]int{alice: 1, carol: 1}, Notices: map[string]int{"2": 1, "5": 1}, Broadcast: 2, Total: 6})

	// Notices read up to b1: n1 and b1 are read, n2 and b2 not.
	mark = f.deliv.len()
	wantOK(t, f.do(t, "POST", "/api/v1/notices/read", bearer(f.userToken(t, bob)), `{"msgid":"`+b1+`"}`), http.StatusOK)
	check(t, bob, api.Unread{Peers: map[string]int{alice: 1, carol: 1}, Notices: map[string]int{"5": 1}, Broadcast: 1, Total: 4})
	// Broadcast marks are per user.
	check(t, alice, api.Unread{Peers: map[string]int{bob: 1}, Notices: map[string]int{}, Broadcast: 2, Total: 3})
	// Up to b2: every notice is read.
	wantOK(t, f.do(t, "POST", "/api/v1/notices/read", bearer(f.userToken(t, bob)), `{"msgid":"`+b2+`"}`), http.StatusOK)
	check(t, bob, api.Unread{Peers: map[string]int{alice: 1, carol: 1}, Notices: map[string]int{}, Broadcast: 0, Total: 2})
	if got := f.deliv.since(mark); len(got) != 0 {
		t.Fatalf("marking notices read handed on %+v", got)
	}

	// Refused marks change nothing.
	user := bearer(f.userToken(t, bob))
	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"msgid missing", "/api/v1/conversations/" + alice + "/read", `{}`, http.StatusNotFound, "not_found"},
		{"msgid of another conversation", "/api/v1/conversations/" + alice + "/read", `{"msgid":"` + c1 + `"}`, http.StatusNotFound, "not_found"},
		{"msgid of no message", "/api/v1/conversations/" + alice + "/read", `{"msgid":"12345"}`, http.StatusNotFound, "not_found"},
		{"msgid not an id", "/api/v1/conversations/" + alice + "/read", `{"msgid":"abc"}`, http.StatusNotFound, "not_found"},
		{"peer is the caller", "/api/v1/conversations/" + bob + "/read", `{"msgid":"` + a1 + `"}`, http.StatusBadRequest, "bad_uid"},
		{"peer not a uid", "/api/v1/conversations/a%20b/read", `{"msgid":"` + a1 + `"}`, http.StatusBadRequest, "bad_uid"},
		{"peer is the notices thread", "/api/v1/conversations/%24notices/read", `{"msgid":"` + n1 + `"}`, http.StatusBadRequest, "bad_uid"},
		{"notices: msgid missing", "/api/v1/notices/read", `{}`, http.StatusBadRequest, "bad_field"},
		{"notices: msgid not an id", "/api/v1/notices/read", `{"msgid":"abc"}`, http.StatusBadRequest, "bad_field"},
		{"notices: msgid over uint64", "/api/v1/notices/read", `{"msgid":"18446744073709551616"}`, http.StatusBadRequest, "bad_field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mark := f.deliv.len()
			f.wantError(t, f.do(t, "POST", tc.path, user, tc.body), tc.status, tc.code)
			if got := f.deliv.since(mark); len(got) != 0 {
				t.Fatalf("refused mark handed on %+v", got)
			}
			check(t, bob, api.Unread{Peers: map[string]int{alice: 1, carol: 1}, Notices: map[string]int{}, Broadcast: 0, Total: 2})
		})
	}
}

// Broadcasts dropped by retention are neither listed nor counted unread.
func TestUnread_BroadcastRetention(t *testing.T) {
	f := newFixtureStore(t, 0, inbox.Options{MaxPerInbox: 3})
	var sent []string
	for i := range 5 {
		sent = append(sent, f.notice(t, messaging.Notice{Content: fmt.Sprintf("b%d", i)}))
	}
	if got := f.unread(t, dave); !equalUnread(got, api.Unread{Peers: map[string]int{}, Notices: map[string]int{}, Broadcast: 3, Total: 3}) {
		t.Fatalf("unread with 2 of 5 broadcasts dropped: %+v", got)
	}
	if got := ids2(f.notices(t, dave, "").Notices); !slices.Equal(got, []string{sent[4], sent[3], sent[2]}) {
		t.Fatalf("notices %v, want the 3 kept", got)
	}
	// A mark below the dropped ones changes nothing; one on a kept one does.
	wantOK(t, f.do(t, "POST", "/api/v1/notices/read", bearer(f.userToken(t, dave)), `{"msgid":"`+sent[0]+`"}`), http.StatusOK)
	if got := f.unread(t, dave); got.Broadcast != 3 || got.Total != 3 {
		t.Fatalf("after marking a dropped notice read: %+v", got)
	}
	wantOK(t, f.do(t, "POST", "/api/v1/notices/read", bearer(f.userToken(t, dave)), `{"msgid":"`+sent[3]+`"}`), http.StatusOK)
	if got := f.unread(t, dave); got.Broadcast != 1 || got.Total != 1 {
		t.Fatalf("after marking b3 read: %+v", got)
	}
	// Once every broadcast has expired none is unread, for any mark.
	if n, err := f.store.ExpireBefore(ctx, time.Now().Add(time.Hour)); err != nil || n != 3 {
		t.Fatalf("expired %d, %v; want the 3 held", n, err)
	}
	for _, uid := range []string{dave, bob} {
		if got := f.unread(t, uid); got.Broadcast != 0 || got.Total != 0 {
			t.Fatalf("%s's unread with every broadcast expired: %+v", uid, got)
		}
		if p := f.notices(t, uid, ""); len(p.Notices) != 0 {
			t.Fatalf("%s's notices with every broadcast expired: %+v", uid, p.Notices)
		}
	}
}

func equalUnread(a, b api.Unread) bool {
	eq := func(x, y map[string]int) bool {
		if len(x) != len(y) || x == nil || y == nil {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || w != v {
				return false
			}
		}
		return true
	}
	return eq(a.Peers, b.Peers) && eq(a.Notices, b.Notices) && a.Broadcast == b.Broadcast && a.Total == b.Total
}

// Targeted notices and notices to everyone are merged newest first, each
// user seeing its own and the broadcasts, and page like messages.
func TestNotices_Merged(t *testing.T) {
	f := newFixture(t, 0)
	if p := f.notices(t, dave, ""); len(p.Notices) != 0 || p.Next != "" {
		t.Fatalf("no notices: %+v", p)
	}
	t1 := f.notice(t, messaging.Notice{UIDs: []string{bob}, Content: "t1", MsgType: 1, Event: "order", Ref: "111"})
	b1 := f.notice(t, messaging.Notice{Content: "b1", MsgType: 9, Ref: `"legacy"`})
	a1 := f.notice(t, messaging.Notice{UIDs: []string{alice}, Content: "a1"})
	t2 := f.notice(t, messaging.Notice{UIDs: []string{bob, alice}, Content: "t2"})
	b2 := f.notice(t, messaging.Notice{Content: "b2"})

	r := f.do(t, "GET", "/api/v1/notices", bearer(f.userToken(t, bob)), "")
	wantStatus(t, r, http.StatusOK)
	var body struct {
		Notices []map[string]any `json:"notices"`
		Next    *string          `json:"next"`
	}
	r.decode(t, &body)
	if body.Next == nil || *body.Next != "" {
		t.Fatalf("next %v, want empty", body.Next)
	}
	type row struct {
		msgid, ct, msgtype, event, ref string
		broadcast                      bool
	}
	var got []row
	for _, n := range body.Notices {
		if len(n) != 8 {
			t.Fatalf("notice %v: want the 8 documented fields", n)
		}
		if n["ts"] != n["time"] {
			t.Fatalf("notice %v: ts unlike time", n)
		}
		if tm, _ := n["time"].(json.Number).Int64(); tm <= 0 {
			t.Fatalf("notice %v without a time", n)
		}
		ref, _ := json.Marshal(n["ref"])
		got = append(got, row{n["msgid"].(string), n["ct"].(string), n["msgtype"].(json.Number).String(), n["event"].(string), string(ref), n["broadcast"].(bool)})
	}
	want := []row{
		{b2, "b2", "0", "", "0", true},
		{t2, "t2", "0", "", "0", false},
		{b1, "b1", "9", "", `"legacy"`, true},
		{t1, "t1", "1", "order", "111", false},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("bob's notices\n got %+v\nwant %+v", got, want)
	}
	if got := ids2(f.notices(t, alice, "").Notices); !slices.Equal(got, []string{b2, t2, a1, b1}) {
		t.Fatalf("alice's notices %v, want %v", got, []string{b2, t2, a1, b1})
	}

	// Page by one: the same order, next is the last msgid of a full page.
	var paged []string
	before := ""
	for range 10 {
		q := "limit=1"
		if before != "" {
			q += "&before=" + before
		}
		p := f.notices(t, bob, q)
		paged = append(paged, ids2(p.Notices)...)
		if len(p.Notices) == 1 && p.Next != p.Notices[0].MsgID {
			t.Fatalf("next %q, want %q", p.Next, p.Notices[0].MsgID)
		}
		if before = p.Next; before == "" {
			break
		}
	}
	if !slices.Equal(paged, []string{b2, t2, b1, t1}) {
		t.Fatalf("paged %v", paged)
	}
	if p := f.notices(t, bob, "before="+t2+"&limit=2"); !slices.Equal(ids2(p.Notices), []string{b1, t1}) || p.Next != t1 {
		t.Fatalf("before t2: %v next %q", ids2(p.Notices), p.Next)
	}
}

// A page of notices holds at most 50, taken from both sources in order.
func TestNotices_PageSize(t *testing.T) {
	f := newFixture(t, 0)
	var sent []string
	for i := range 30 {
		sent = append(sent, f.notice(t, messaging.Notice{UIDs: []string{bob}, Content: fmt.Sprintf("t%d", i)}))
		sent = append(sent, f.notice(t, messaging.Notice{Content: fmt.Sprintf("b%d", i)}))
	}
	slices.Reverse(sent)
	first := f.notices(t, bob, "limit=500")
	if len(first.Notices) != api.PageSize || first.Next != sent[api.PageSize-1] {
		t.Fatalf("first page: %d notices, next %q", len(first.Notices), first.Next)
	}
	second := f.notices(t, bob, "before="+first.Next)
	if got := append(ids2(first.Notices), ids2(second.Notices)...); !slices.Equal(got, sent) || second.Next != "" {
		t.Fatalf("pages differ from the notices sent, newest first (second next %q)", second.Next)
	}
	for i, n := range first.Notices {
		if n.Broadcast != (i%2 == 0) { // newest is a broadcast, then alternating
			t.Fatalf("notice %d %+v: broadcast %v", i, n, n.Broadcast)
		}
	}
}

func ids2(ns []api.Notice) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.MsgID
	}
	return out
}

// Only the sender deletes a message: it leaves both histories, unread
// counts drop and both parties are told.
func TestDeleteMessage(t *testing.T) {
	f := newFixture(t, 0)
	m1 := f.send(t, alice, bob, "m1")
	m2 := f.send(t, alice, bob, "m2")
	other := f.send(t, carol, bob, "from carol")
	for _, tc := range []struct {
		name, by, msgid string
		status          int
		code            string
	}{
		{"the recipient", bob, m1, http.StatusForbidden, "forbidden"},
		{"a third user", carol, m1, http.StatusNotFound, "not_found"},
		{"the sender, someone else's message", alice, other, http.StatusNotFound, "not_found"},
		{"no such message", alice, "12345", http.StatusNotFound, "not_found"},
		{"not a msgid", alice, "abc", http.StatusNotFound, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mark := f.deliv.len()
			f.wantError(t, f.do(t, "DELETE", "/api/v1/messages/"+tc.msgid, bearer(f.userToken(t, tc.by)), ""), tc.status, tc.code)
			if got := f.deliv.since(mark); len(got) != 0 {
				t.Fatalf("refused delete handed on %+v", got)
			}
			if len(f.thread(t, bob, alice)) != 2 || len(f.thread(t, alice, bob)) != 2 {
				t.Fatal("a refused delete removed a message")
			}
		})
	}
	if u := f.unread(t, bob); u.Peers[alice] != 2 {
		t.Fatalf("unread %+v", u)
	}

	mark := f.deliv.len()
	wantOK(t, f.do(t, "DELETE", "/api/v1/messages/"+m1, bearer(f.userToken(t, alice)), ""), http.StatusOK)
	for _, v := range []struct{ uid, peer string }{{alice, bob}, {bob, alice}} {
		if got := ids(f.messages(t, v.uid, v.peer, "").Messages); !slices.Equal(got, []string{m2}) {
			t.Fatalf("%s's history %v, want only %s", v.uid, got, m2)
		}
	}
	if u := f.unread(t, bob); u.Peers[alice] != 1 || u.Total != 2 {
		t.Fatalf("unread after delete %+v", u)
	}
	told := map[string]bool{}
	for _, m := range f.deliv.since(mark) {
		if m.Kind == inbox.KindDelete && m.Ref == m1 {
			told[m.UID] = true
		}
	}
	if !told[alice] || !told[bob] || len(f.deliv.since(mark)) != 2 {
		t.Fatalf("handed on %+v, want a DelMsg for each party", f.deliv.since(mark))
	}
	// Deleting again: gone.
	f.wantError(t, f.do(t, "DELETE", "/api/v1/messages/"+m1, bearer(f.userToken(t, alice)), ""), http.StatusNotFound, "not_found")
}

// Users see only their own inbox: other users' conversations, messages
// and unread counts are out of reach.
func TestOtherUsersData(t *testing.T) {
	f := newFixture(t, 0)
	ab := f.send(t, alice, bob, "alice to bob")
	f.send(t, bob, alice, "bob to alice")
	ca := f.send(t, carol, alice, "carol to alice")

	if c := f.conversations(t, carol); len(c) != 1 || c[0].Peer != alice || c[0].Last.MsgID != ca {
		t.Fatalf("carol's conversations %+v", c)
	}
	if p := f.messages(t, carol, bob, ""); len(p.Messages) != 0 {
		t.Fatalf("carol reads bob's conversation: %+v", p.Messages)
	}
	if p := f.messages(t, carol, alice, ""); !slices.Equal(ids(p.Messages), []string{ca}) {
		t.Fatalf("carol's conversation with alice %v", ids(p.Messages))
	}
	if u := f.unread(t, carol); u.Total != 0 || len(u.Peers) != 0 {
		t.Fatalf("carol's unread %+v", u)
	}
	// carol cannot mark bob's conversation read, nor delete alice's message.
	f.wantError(t, f.do(t, "POST", "/api/v1/conversations/"+alice+"/read", bearer(f.userToken(t, carol)), `{"msgid":"`+ab+`"}`), http.StatusNotFound, "not_found")
	f.wantError(t, f.do(t, "DELETE", "/api/v1/messages/"+ab, bearer(f.userToken(t, carol)), ""), http.StatusNotFound, "not_found")
	if u := f.unread(t, bob); u.Peers[alice] != 1 {
		t.Fatalf("bob's unread %+v", u)
	}
	if len(f.thread(t, bob, alice)) != 2 {
		t.Fatal("bob's conversation changed")
	}
}

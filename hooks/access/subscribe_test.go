package access

import (
	"fmt"
	"strings"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// SUBACK codes.
const (
	granted0      = 0x00
	granted1      = 0x01
	granted2      = 0x02
	v3Failure     = 0x80 // 3.1.1: the only refusal code
	v5NotAuth     = 0x87
	v5FilterInval = 0x8F
)

// subCase is one SUBSCRIBE filter (requested at QoS 2) and its SUBACK code
// in MQTT 5; 3.1.1 gets the same granted QoS, or 0x80 for any refusal.
type subCase struct {
	name   string
	filter string
	code5  byte
}

func (c subCase) want(version byte) byte {
	if version == v311 && c.code5 >= 0x80 {
		return v3Failure
	}
	return c.code5
}

// subject is who subscribes in TestSubscribe_Filters.
type subject struct {
	name  string
	login func(f *fixture, t *testing.T) login
	cases []subCase
}

func subjects() []subject {
	user := func(f *fixture, t *testing.T) login {
		return login{user: "10001", pass: f.token(t, "10001"), id: "phone", clean: true}
	}
	return []subject{
		{name: "user", login: user, cases: []subCase{
			// The own inbox, exactly; reserved topics are granted QoS 1 at most.
			{"own inbox", "inbox/10001", granted1},
			{"another user's inbox", "inbox/10002", v5NotAuth},
			{"inbox wildcard +", "inbox/+", v5NotAuth},
			{"inbox wildcard #", "inbox/#", v5NotAuth},
			{"inbox itself", "inbox", v5NotAuth},
			{"below the own inbox", "inbox/10001/x", v5NotAuth},
			{"own inbox with a trailing level wildcard", "inbox/10001/#", v5NotAuth},
			{"everything", "#", v5NotAuth},
			{"every first level", "+", v5NotAuth},
			{"wildcard first level, own uid", "+/10001", v5NotAuth},
			{"two wildcard levels", "+/+", v5NotAuth},
			{"wildcard first level under an opened rule", "+/news", v5NotAuth},
			{"shared own inbox", "$share/g/inbox/10001", v5NotAuth},
			{"shared other inbox", "$share/g/inbox/10002", v5NotAuth},
			{"shared everything", "$share/g/#", v5NotAuth},
			// Granted at the QoS asked for: the shared filter is an opened
			// topic, not a reserved one.
			{"shared opened topic", "$share/g/public/news", granted2},
			{"shared with a wildcard group", "$share/+/public/news", v5FilterInval},
			{"shared without a filter", "$share/g", v5FilterInval},
			{"$SYS for a user", "$SYS/#", v5NotAuth},
			{"$SYS topic for a user", "$SYS/broker/uptime", v5NotAuth},
			{"broadcast", "broadcast", granted1},
			{"below broadcast", "broadcast/#", v5NotAuth},
			{"request topic", "im/sendmsg", v5NotAuth},
			{"request topics", "im/#", v5NotAuth},
			{"opened topic", "public/news", granted2},
			{"opened wildcard", "public/#", granted2},
			{"opened %u rule, own uid", "devices/10001/#", granted2},
			{"opened %u rule, another uid", "devices/10002/#", v5NotAuth},
			{"opened %u rule, wildcard uid", "devices/+/temp", v5NotAuth},
			// %c is the client id as the client sent it, not the internal id.
			{"opened %c rule, own client id", "clients/phone", granted2},
			{"opened %c rule, internal id", "clients/10001|phone", v5NotAuth},
			{"opened %c rule, another client id", "clients/tablet", v5NotAuth},
			{"unopened topic", "private/x", v5NotAuth},
			{"invalid filter", "a/#/b", v5FilterInval},
		}},
		{name: "admin account", login: func(f *fixture, t *testing.T) login {
			return login{user: opsName, pass: opsPassword, id: "console", clean: true}
		}, cases: []subCase{
			{"own inbox", "inbox/ops", granted1},
			{"a user's inbox", "inbox/10001", v5NotAuth},
			{"inbox wildcard", "inbox/#", v5NotAuth},
			{"$SYS", "$SYS/#", granted1},
			{"shared $SYS", "$share/g/$SYS/#", v5NotAuth},
			{"broadcast", "broadcast", granted1},
			{"everything", "#", v5NotAuth},
		}},
		{name: "service account", login: func(f *fixture, t *testing.T) login {
			return login{user: backendName, pass: backendPassword, id: "worker", clean: true}
		}, cases: []subCase{
			{"own inbox", "inbox/backend", granted1},
			{"a user's inbox", "inbox/10001", v5NotAuth},
			{"$SYS", "$SYS/#", v5NotAuth},
			{"opened topic", "public/x", granted2},
		}},
		{name: "user with an admin token", login: func(f *fixture, t *testing.T) login {
			return login{user: "10009", pass: adminToken(t, f, "10009"), id: "a", clean: true}
		}, cases: []subCase{
			{"own inbox", "inbox/10009", granted1},
			{"$SYS", "$SYS/broker/uptime", granted1},
			{"a user's inbox", "inbox/10001", v5NotAuth},
		}},
	}
}

// Each SUBSCRIBE filter is granted or refused by the policy with the code
// of the protocol version (0x80 for 3.1.1, 0x87 for MQTT 5), QoS 2 is cut
// to 1 on reserved topics, and only granted filters reach the topic index.
func TestSubscribe_Filters(t *testing.T) {
	for _, version := range []byte{v311, v5} {
		for _, who := range subjects() {
			t.Run(versionName(version)+"/"+who.name, func(t *testing.T) {
				f := newFixture(t, setup{})
				l := who.login(f, t)
				w := f.connect(t, version, l)
				cl := f.client(t, internalID(l.user, l.id))
				for _, tc := range who.cases {
					t.Run(tc.name, func(t *testing.T) {
						denied := f.denied.Load()
						codes := w.subscribe(t, 2, tc.filter)
						if want := tc.want(version); codes[0] != want {
							t.Fatalf("SUBACK for %q: %#x, want %#x", tc.filter, codes[0], want)
						}
						_, held := cl.State.Subscriptions.Get(tc.filter)
						if held != (tc.code5 < 0x80) {
							t.Fatalf("subscription %q held = %v after SUBACK %#x", tc.filter, held, codes[0])
						}
						wantDenied := int64(0)
						if tc.code5 == v5NotAuth {
							wantDenied = 1
						}
						if n := f.denied.Load() - denied; n != wantDenied {
							t.Fatalf("OnACLDenied called %d times, want %d", n, wantDenied)
						}
					})
				}
			})
		}
	}
}

// Anonymous clients, when enabled, read only what the anonymous rules open:
// no inbox (they own none), no broadcast, none of the account rules.
func TestSubscribe_Anonymous(t *testing.T) {
	for _, version := range []byte{v311, v5} {
		t.Run(versionName(version), func(t *testing.T) {
			f := newFixture(t, setup{allowAnonymous: true})
			w := f.connect(t, version, login{id: "kiosk", clean: true})
			for _, tc := range []subCase{
				{"anonymous rule", "lobby/#", granted2},
				{"anonymous rule, one topic", "lobby/chat", granted2},
				{"empty inbox", "inbox/", v5NotAuth},
				{"an inbox", "inbox/10001", v5NotAuth},
				{"inbox wildcard", "inbox/+", v5NotAuth},
				{"broadcast", "broadcast", v5NotAuth},
				{"account rule", "public/news", v5NotAuth},
				{"%c rule of accounts", "clients/kiosk", v5NotAuth},
				{"$SYS", "$SYS/#", v5NotAuth},
				{"everything", "#", v5NotAuth},
			} {
				t.Run(tc.name, func(t *testing.T) {
					if got, want := w.subscribe(t, 2, tc.filter)[0], tc.want(version); got != want {
						t.Fatalf("SUBACK for %q: %#x, want %#x", tc.filter, got, want)
					}
				})
			}
		})
	}
}

// One SUBSCRIBE with several filters gets one decision per filter, in order.
func TestSubscribe_MixedFilters(t *testing.T) {
	for _, tc := range []struct {
		version byte
		want    []byte
	}{
		{v311, []byte{granted1, v3Failure, granted2, v3Failure, granted1}},
		{v5, []byte{granted1, v5NotAuth, granted2, v5NotAuth, granted1}},
	} {
		t.Run(versionName(tc.version), func(t *testing.T) {
			f := newFixture(t, setup{})
			w := f.connect(t, tc.version, login{user: "10001", pass: f.token(t, "10001"), id: "m", clean: true})
			got := w.subscribe(t, 2, "inbox/10001", "inbox/10002", "public/a", "#", "broadcast")
			if fmt.Sprintf("% x", got) != fmt.Sprintf("% x", tc.want) {
				t.Fatalf("SUBACK codes % x, want % x", got, tc.want)
			}
		})
	}
}

// A subscription the policy would refuse never delivers: the read check
// also runs per delivered message, so a filter that got into the topic index
// some other way (here, put there directly) delivers nothing.
func TestDelivery_ReadCheckedPerMessage(t *testing.T) {
	f := newFixture(t, setup{})
	w := f.connect(t, v5, login{user: "10001", pass: f.token(t, "10001"), id: "phone", clean: true})
	if codes := w.subscribe(t, 0, "inbox/10001"); codes[0] != granted0 {
		t.Fatalf("own inbox: %#x", codes[0])
	}
	id := internalID("10001", "phone")
	for _, filter := range []string{"inbox/10002", "inbox/+", "$SYS/#", "#"} {
		f.s.Topics.Subscribe(id, packets.Subscription{Filter: filter})
	}
	denied := f.denied.Load()
	f.publish(t, "inbox/10002", "for someone else")
	f.publish(t, "$SYS/broker/secret", "for admins")
	f.publish(t, "private/x", "for nobody")
	f.publish(t, "inbox/10001", "mine")
	// Deliveries to one client keep their order: the first one that
	// arrives must be the last published, the only one allowed.
	pk := w.nextPublish(t)
	if pk.TopicName != "inbox/10001" || string(pk.Payload) != "mine" {
		t.Fatalf("received %q %q, want only inbox/10001", pk.TopicName, pk.Payload)
	}
	// inbox/10002 matched two subscriptions but mochi checks once per
	// client; $SYS and private/x once each; inbox/10001 passed.
	if n := f.denied.Load() - denied; n != 3 {
		t.Fatalf("OnACLDenied called %d times for 3 refused deliveries", n)
	}
}

// A persistent session keeps its identity while it waits for its client,
// so messages on opened topics are queued for it; a clean session's
// identity goes with its connection, and nothing reads on its behalf.
func TestDelivery_IdentityWhileSessionWaits(t *testing.T) {
	for _, tt := range []struct {
		name  string
		clean bool
		keeps bool
	}{
		{"persistent session", false, true},
		{"deny: clean session", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, setup{})
			w := f.connect(t, v311, login{user: "10001", pass: f.token(t, "10001"), id: "phone", clean: tt.clean})
			if codes := w.subscribe(t, 1, "public/news"); codes[0] != granted1 {
				t.Fatalf("public/news: %#x", codes[0])
			}
			cl := f.client(t, internalID("10001", "phone"))
			if !f.h.OnACLCheck(cl, "public/news", false) {
				t.Fatal("read refused while connected")
			}
			w.drop(t)
			waitUntil(t, "the connection to end", func() bool { return cl.Closed() })
			if !tt.keeps { // OnDisconnect may run a moment after the close
				waitUntil(t, "the identity to go", func() bool { _, ok := f.h.Identity(cl); return !ok })
			}
			if _, ok := f.h.Identity(cl); ok != tt.keeps {
				t.Fatalf("identity kept after the connection ended: %v, want %v", ok, tt.keeps)
			}
			if got := f.h.OnACLCheck(cl, "public/news", false); got != tt.keeps {
				t.Fatalf("read for the waiting session allowed: %v, want %v", got, tt.keeps)
			}
		})
	}
}

// The per-connection subscription cap: new filters beyond it are refused
// (0x87 / 0x80) while the others of the same SUBSCRIBE go through;
// renewing a held filter is not a new subscription; unsubscribing frees a
// slot; the refused filters are logged once per SUBSCRIBE, not as ACL
// refusals.
func TestSubscribe_Limit(t *testing.T) {
	for _, version := range []byte{v311, v5} {
		t.Run(versionName(version), func(t *testing.T) {
			refused := byte(v5NotAuth)
			if version == v311 {
				refused = v3Failure
			}
			f := newFixture(t, setup{maxSubs: 3})
			w := f.connect(t, version, login{user: "10001", pass: f.token(t, "10001"), id: "phone", clean: true})
			cl := f.client(t, internalID("10001", "phone"))
			steps := []struct {
				name    string
				unsub   []string
				filters []string
				want    []byte
				held    int
			}{
				{name: "first", filters: []string{"inbox/10001"}, want: []byte{granted1}, held: 1},
				{name: "two more in one packet", filters: []string{"public/0", "public/1"}, want: []byte{granted1, granted1}, held: 3},
				{name: "one over", filters: []string{"public/2"}, want: []byte{refused}, held: 3},
				{name: "renewal of a held filter", filters: []string{"public/0"}, want: []byte{granted1}, held: 3},
				{name: "renewal next to a new one", filters: []string{"public/1", "public/3"}, want: []byte{granted1, refused}, held: 3},
				{name: "after an unsubscribe", unsub: []string{"public/0"}, filters: []string{"public/2", "public/3"}, want: []byte{granted1, refused}, held: 3},
			}
			for _, s := range steps {
				t.Run(s.name, func(t *testing.T) {
					if len(s.unsub) > 0 {
						w.unsubscribe(t, s.unsub...)
					}
					if got := w.subscribe(t, 1, s.filters...); fmt.Sprintf("% x", got) != fmt.Sprintf("% x", s.want) {
						t.Fatalf("SUBACK % x, want % x", got, s.want)
					}
					if n := cl.State.Subscriptions.Len(); n != s.held {
						t.Fatalf("%d subscriptions held, want %d", n, s.held)
					}
					if _, ok := cl.State.Subscriptions.Get(tooManyFilter); ok {
						t.Fatal("the placeholder filter became a subscription")
					}
				})
			}
			if n := len(f.logs.Lines("subscriptions refused: limit reached")); n != 3 {
				t.Fatalf("%d limit log lines, want one per SUBSCRIBE that hit the limit (3)", n)
			}
			if lines := f.logs.Lines("read denied"); len(lines) != 0 {
				t.Fatalf("the limit was logged as an ACL refusal: %q", lines)
			}
		})
	}
}

// Filters refused anyway (by the policy, or invalid) take no slot under
// the limit and keep their own reason code; a filter named twice in one
// SUBSCRIBE takes one.
func TestSubscribe_LimitCountsOnlyGrantable(t *testing.T) {
	for _, version := range []byte{v311, v5} {
		t.Run(versionName(version), func(t *testing.T) {
			denied, invalid := byte(v5NotAuth), byte(0x8F)
			if version == v311 {
				denied, invalid = v3Failure, v3Failure
			}
			f := newFixture(t, setup{maxSubs: 2})
			w := f.connect(t, version, login{user: "10001", pass: f.token(t, "10001"), id: "phone", clean: true})
			cl := f.client(t, internalID("10001", "phone"))
			got := w.subscribe(t, 1, "inbox/10002", "a/#/b", "public/a", "public/a", "public/b")
			want := []byte{denied, invalid, granted1, granted1, granted1}
			if fmt.Sprintf("% x", got) != fmt.Sprintf("% x", want) {
				t.Fatalf("SUBACK % x, want % x", got, want)
			}
			if n := cl.State.Subscriptions.Len(); n != 2 {
				t.Fatalf("%d subscriptions held, want 2", n)
			}
		})
	}
}

// SetMaxSubscriptions applies to connected clients at once: lowering it
// refuses new filters (held ones stay), 0 lifts the limit.
func TestSubscribe_SetMaxSubscriptions(t *testing.T) {
	f := newFixture(t, setup{maxSubs: 10})
	w := f.connect(t, v5, login{user: "10001", pass: f.token(t, "10001"), id: "phone", clean: true})
	cl := f.client(t, internalID("10001", "phone"))
	if got := w.subscribe(t, 1, "public/0", "public/1", "public/2"); fmt.Sprint(got) != fmt.Sprint([]byte{1, 1, 1}) {
		t.Fatalf("SUBACK %v", got)
	}
	f.h.SetMaxSubscriptions(2)
	if got := w.subscribe(t, 1, "public/3"); got[0] != v5NotAuth {
		t.Fatalf("over a lowered limit: %#x, want 0x87", got[0])
	}
	if got := w.subscribe(t, 1, "public/2"); got[0] != granted1 {
		t.Fatalf("renewal over a lowered limit: %#x, want granted", got[0])
	}
	if n := cl.State.Subscriptions.Len(); n != 3 {
		t.Fatalf("%d subscriptions held, want the 3 from before", n)
	}
	f.h.SetMaxSubscriptions(0)
	many := make([]string, 20)
	for i := range many {
		many[i] = fmt.Sprintf("public/many/%d", i)
	}
	for i, c := range w.subscribe(t, 1, many...) {
		if c != granted1 {
			t.Fatalf("filter %d refused with no limit: %#x", i, c)
		}
	}
}

// OnSubscribe on its own: QoS over 1 is cut on reserved filters only, and
// filters beyond the limit are replaced by the refused placeholder.
func TestOnSubscribe_Rewrites(t *testing.T) {
	f := newFixture(t, setup{maxSubs: 2})
	cl := f.mustAuthed(t, "10001", f.token(t, "10001"), "phone")
	cl.State.Subscriptions.Add("public/held", packets.Subscription{Filter: "public/held"})
	pk := packets.Packet{Filters: packets.Subscriptions{
		{Filter: "inbox/10001", Qos: 2},
		{Filter: "public/held", Qos: 2},
		{Filter: "broadcast", Qos: 2},
		{Filter: "public/new", Qos: 0},
	}}
	out := f.h.OnSubscribe(cl, pk)
	want := []packets.Subscription{
		{Filter: "inbox/10001", Qos: 1}, // new: 2 held now
		{Filter: "public/held", Qos: 2}, // renewal of a held filter, not reserved
		{Filter: tooManyFilter, Qos: 1}, // over the limit (QoS cut first)
		{Filter: tooManyFilter, Qos: 0}, // over the limit
	}
	for i, w := range want {
		if out.Filters[i].Filter != w.Filter || out.Filters[i].Qos != w.Qos {
			t.Errorf("filter %d = %q QoS %d, want %q QoS %d", i, out.Filters[i].Filter, out.Filters[i].Qos, w.Filter, w.Qos)
		}
	}
	// The placeholder is a valid filter that the policy refuses.
	if !mqtt.IsValidFilter(tooManyFilter, false) {
		t.Fatal("placeholder is not a valid filter: mochi would answer 0x8F, not 0x87")
	}
	if f.h.OnACLCheck(cl, tooManyFilter, false) {
		t.Fatal("placeholder filter allowed by the read check")
	}
	if strings.Contains(f.logs.String(), "read denied") {
		t.Fatal("placeholder refusal logged as a read denial")
	}
}

package access

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/auth"
)

// The identity of each kind of login: who it is, its role, the client id
// as sent (not the internal one), the token's profile and expiry; the
// internal session id is "{uid}|{client id}"; the identity goes with the
// connection.
func TestIdentity_PerLogin(t *testing.T) {
	f := newFixture(t, setup{allowAnonymous: true})
	exp, hour := time.Now().Add(30*time.Minute), time.Now().Add(time.Hour)
	profile, err := f.tokens.Mint(auth.Claims{UID: "10001", TTL: 30 * time.Minute, Nickname: "Alice", Avatar: "https://a.example/1.png"})
	if err != nil {
		t.Fatal(err)
	}
	// want lists the identity's fields flat, whatever the struct nesting.
	type want struct {
		UID, ClientID, Nickname, Avatar string
		Role                            acl.Role
	}
	for _, tc := range []struct {
		name    string
		version byte
		l       login
		want    want
		expires time.Time // the token's exp; zero for none
	}{
		{"user token with profile", v5, login{user: "10001", pass: profile, id: "phone", clean: true},
			want{UID: "10001", Role: acl.RoleUser, ClientID: "phone", Nickname: "Alice", Avatar: "https://a.example/1.png"}, exp},
		{"user token with the admin role", v311, login{user: "10002", pass: adminToken(t, f, "10002"), id: "desk", clean: true},
			want{UID: "10002", Role: acl.RoleAdmin, ClientID: "desk"}, hour},
		{"admin account", v311, login{user: opsName, pass: opsPassword, id: "console", clean: true},
			want{UID: opsName, Role: acl.RoleAdmin, ClientID: "console"}, time.Time{}},
		{"service account", v5, login{user: backendName, pass: backendPassword, id: "worker", clean: true},
			want{UID: backendName, Role: acl.RoleService, ClientID: "worker"}, time.Time{}},
		{"anonymous", v311, login{id: "kiosk", clean: true},
			want{Role: acl.RoleAnonymous, ClientID: "kiosk"}, time.Time{}},
		{"client id with the separator", v5, login{user: "10003", pass: f.token(t, "10003"), id: "a|b", clean: true},
			want{UID: "10003", Role: acl.RoleUser, ClientID: "a|b"}, hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := f.connect(t, tc.version, tc.l)
			cl := f.client(t, internalID(tc.want.UID, tc.l.id))
			if cl.ID != tc.want.UID+"|"+tc.l.id {
				t.Fatalf("internal id %q", cl.ID)
			}
			got, ok := f.h.Identity(cl)
			if !ok {
				t.Fatal("no identity for a connected client")
			}
			if g := (want{UID: got.UID, ClientID: got.ClientID, Nickname: got.Nickname, Avatar: got.Avatar, Role: got.Role}); g != tc.want {
				t.Fatalf("identity %+v, want %+v", g, tc.want)
			}
			// exp has whole seconds: within a second of when it was minted.
			if tc.expires.IsZero() != got.Expires.IsZero() ||
				got.Expires.Sub(tc.expires) > time.Second || tc.expires.Sub(got.Expires) > time.Second {
				t.Fatalf("expires %v, want %v (the token's exp; zero for none)", got.Expires, tc.expires)
			}
			if s := got.Subject(); s != (acl.Subject{Username: tc.want.UID, ClientID: tc.want.ClientID, Role: tc.want.Role}) {
				t.Fatalf("subject %+v", s)
			}
			w.drop(t)
			if _, ok := f.h.Identity(cl); ok {
				t.Fatal("identity kept after the connection ended")
			}
		})
	}
	if _, ok := f.h.Identity(f.s.NewClient(nil, "t", "never", false)); ok {
		t.Fatal("identity for a client that never logged in")
	}
}

// An MQTT 5 client without a client id gets one assigned by mochi: the
// CONNACK carries it as the client knows it (without the account prefix),
// and it is the identity's client id.
func TestIdentity_AssignedClientID(t *testing.T) {
	f := newFixture(t, setup{})
	w, ack := f.dial(t, v5, login{user: "10001", pass: f.token(t, "10001"), clean: true})
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", ack.ReasonCode)
	}
	assigned := ack.Properties.AssignedClientID
	if assigned == "" || strings.Contains(assigned, IDSeparator) {
		t.Fatalf("assigned client id %q, want mochi's id without the account", assigned)
	}
	cl := f.client(t, internalID("10001", assigned))
	if id, ok := f.h.Identity(cl); !ok || id.ClientID != assigned {
		t.Fatalf("identity %+v %v, want client id %q", id, ok, assigned)
	}
	w.ping(t)
}

// Anonymous clients: refused unless enabled (whatever the version);
// when enabled, only a login with neither username nor password is
// anonymous, and its will may only go where the anonymous rules allow
// writes.
func TestAnonymous(t *testing.T) {
	for _, tc := range []struct {
		name    string
		enabled bool
		l       login
		reason  string // "" when accepted
	}{
		{"disabled", false, login{id: "kiosk"}, "anonymous_disabled"},
		{"disabled, empty client id", false, login{clean: true}, "anonymous_disabled"},
		{"enabled", true, login{id: "kiosk"}, ""},
		{"enabled, empty client id", true, login{clean: true}, ""},
		{"enabled, will on an anonymous rule topic", true, login{id: "kiosk", will: "lobby/left"}, ""},
		{"enabled, will on an account rule topic", true, login{id: "kiosk", will: "public/left"}, "will_denied"},
		{"enabled, will on an inbox", true, login{id: "kiosk", will: "inbox/10001"}, "will_denied"},
		{"enabled, will on a request topic", true, login{id: "kiosk", will: "im/sendmsg"}, "will_denied"},
		{"enabled, username without password is no anonymous login", true, login{user: "10001", id: "kiosk"}, "token_malformed"},
		{"enabled, password without username is no anonymous login", true, login{pass: "pw-without-user", id: "kiosk"}, "invalid_username"},
	} {
		for _, version := range []byte{v311, v5} {
			t.Run(tc.name+"/"+versionName(version), func(t *testing.T) {
				f := newFixture(t, setup{allowAnonymous: tc.enabled})
				w, ack := f.dial(t, version, tc.l)
				if tc.reason == "" {
					if ack.ReasonCode != 0 {
						t.Fatalf("CONNACK %#x, reasons %v", ack.ReasonCode, f.failuresSince(0))
					}
					w.ping(t)
					return
				}
				if ack.ReasonCode == 0 {
					t.Fatal("login accepted")
				}
				w.rest(t)
				if got := f.failuresSince(0); len(got) != 1 || got[0] != tc.reason {
					t.Fatalf("reasons %v, want [%s]", got, tc.reason)
				}
			})
		}
	}
}

// SetCredentials swaps the token secret and the static accounts for new
// logins while connected clients stay connected; Credentials returns what
// was set; with either one nil, its kind of login is refused.
func TestSetCredentials(t *testing.T) {
	f := newFixture(t, setup{})
	oldTok := f.token(t, "10001")
	before := f.connect(t, v5, login{user: "10001", pass: oldTok, id: "before", clean: true})
	beforeCl := f.client(t, internalID("10001", "before"))

	newTokens, err := auth.NewTokens([]byte("rotated-secret-rotated-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	newTok, err := newTokens.Mint(auth.Claims{UID: "10001", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	newAccounts, err := auth.NewAccounts([]auth.Account{{Name: opsName, PasswordHash: lowCostHash(t, "new-ops-password"), Role: auth.RoleAdmin}})
	if err != nil {
		t.Fatal(err)
	}

	type attempt struct {
		user, pass string
		reason     string // "" when accepted
	}
	for _, step := range []struct {
		name     string
		creds    Credentials
		attempts []attempt
	}{
		{"rotated secret and accounts", Credentials{Tokens: newTokens, Accounts: newAccounts}, []attempt{
			{"10001", oldTok, "token_signature"},
			{"10001", newTok, ""},
			{opsName, opsPassword, "bad_password"},
			{opsName, "new-ops-password", ""},
			{backendName, backendPassword, "token_malformed"}, // no longer an account
		}},
		{"no tokens", Credentials{Accounts: newAccounts}, []attempt{
			{"10001", newTok, "tokens_disabled"},
			{opsName, "new-ops-password", ""},
		}},
		{"no accounts", Credentials{Tokens: newTokens}, []attempt{
			{"10001", newTok, ""},
			{opsName, "new-ops-password", "token_malformed"},
		}},
		{"nothing", Credentials{}, []attempt{
			{"10001", newTok, "tokens_disabled"},
			{opsName, "new-ops-password", "tokens_disabled"},
		}},
		{"back to the start", Credentials{Tokens: f.tokens, Accounts: f.accounts}, []attempt{
			{"10001", oldTok, ""},
			{"10001", newTok, "token_signature"},
			{opsName, opsPassword, ""},
		}},
	} {
		t.Run(step.name, func(t *testing.T) {
			f.h.SetCredentials(step.creds)
			if got := f.h.Credentials(); got != step.creds {
				t.Fatalf("Credentials() = %+v, want %+v", got, step.creds)
			}
			for i, a := range step.attempts {
				n := f.failureCount()
				w, ack := f.dial(t, v5, login{user: a.user, pass: a.pass, id: fmt.Sprintf("c%d", i), clean: true})
				if (ack.ReasonCode == 0) != (a.reason == "") {
					t.Fatalf("%s: CONNACK %#x, want refusal %q", a.user, ack.ReasonCode, a.reason)
				}
				if got := f.failuresSince(n); a.reason != "" && (len(got) != 1 || got[0] != a.reason) {
					t.Fatalf("%s: reasons %v, want [%s]", a.user, got, a.reason)
				}
				w.drop(t)
			}
			// The client connected with the first secret is still served.
			before.ping(t)
			if _, ok := f.h.Identity(beforeCl); !ok || beforeCl.Closed() {
				t.Fatal("a connected client lost its identity or connection")
			}
		})
	}
}

// A refused token login of a name that is not a static account costs the
// same bcrypt comparison as a wrong password, also with tokens disabled.
func TestSetCredentials_TokensDisabledCostsLikeAWrongPassword(t *testing.T) {
	f := newFixture(t, setup{noTokens: true})
	for _, tc := range []struct {
		name, user, pass, reason string
	}{
		{"token of a user", "10001", "x-token-x", "tokens_disabled"},
		{"wrong account password", opsName, "wrong-password-4411", "bad_password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, before := f.failureCount(), f.accounts.Comparisons()
			if _, ok := f.authed(t, tc.user, tc.pass, "c", "192.0.2.1:1"); ok {
				t.Fatal("accepted")
			}
			if got := f.failuresSince(n); len(got) != 1 || got[0] != tc.reason {
				t.Fatalf("reasons %v, want [%s]", got, tc.reason)
			}
			if d := f.accounts.Comparisons() - before; d != 1 {
				t.Fatalf("%d bcrypt comparisons, want 1", d)
			}
		})
	}
}

// Init refuses what the hook cannot work without and fills in defaults.
func TestInit(t *testing.T) {
	s := mqtt.New(&mqtt.Options{Logger: discardLog})
	policy := mustPolicy(t, nil, nil)
	for _, tc := range []struct {
		name   string
		config any
		ok     bool
	}{
		{"nil", nil, false},
		{"nil *Options", (*Options)(nil), false},
		{"Options by value", Options{Server: s, Policy: policy}, false},
		{"no server", &Options{Policy: policy}, false},
		{"no policy", &Options{Server: s}, false},
		{"server and policy: defaults", &Options{Server: s, Policy: policy}, true},
		{"with a logger", &Options{Server: s, Policy: policy, Log: discardLog}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := new(Hook)
			err := h.Init(tc.config)
			if (err == nil) != tc.ok {
				t.Fatalf("Init = %v, want ok %v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			if h.opts.MaxClientID != DefaultMaxClientID || h.opts.Log == nil {
				t.Fatalf("defaults not set: MaxClientID %d, Log %v", h.opts.MaxClientID, h.opts.Log)
			}
			if c := h.Credentials(); c.Tokens != nil || c.Accounts != nil {
				t.Fatalf("credentials %+v, want none", c)
			}
			if h.opts.Log != discardLog {
				return // no logins: they would log to slog.Default
			}
			// With no credentials only anonymous logins could pass, and
			// those are off: every login is refused.
			cl := s.NewClient(nil, "t", "c", false)
			cl.Net.Remote = "192.0.2.1:1"
			for _, user := range []string{"", "10001", opsName} {
				pk := packets.Packet{Connect: packets.ConnectParams{Username: []byte(user), Password: []byte("pw-123456")}}
				if user == "" {
					pk.Connect.Password = nil
				}
				if h.OnConnectAuthenticate(cl, pk) {
					t.Fatalf("login %q accepted with no credentials", user)
				}
			}
		})
	}
	if err := s.AddHook(new(Hook), nil); err == nil {
		t.Fatal("AddHook with no options succeeded")
	}
}

// The hook handles exactly the events it implements.
func TestProvides(t *testing.T) {
	h := new(Hook)
	if h.ID() != "inboxmq-access" {
		t.Fatalf("ID %q", h.ID())
	}
	want := map[byte]bool{
		mqtt.OnConnect: true, mqtt.OnConnectAuthenticate: true, mqtt.OnACLCheck: true,
		mqtt.OnSessionEstablish: true, mqtt.OnSubscribe: true, mqtt.OnDisconnect: true, mqtt.OnClientExpired: true,
	}
	for _, tc := range []struct {
		name  string
		event byte
	}{
		{"OnConnect", mqtt.OnConnect},
		{"OnConnectAuthenticate", mqtt.OnConnectAuthenticate},
		{"OnACLCheck", mqtt.OnACLCheck},
		{"OnSessionEstablish", mqtt.OnSessionEstablish},
		{"OnSubscribe", mqtt.OnSubscribe},
		{"OnDisconnect", mqtt.OnDisconnect},
		{"OnClientExpired", mqtt.OnClientExpired},
		{"OnPublish: decided by the delivery hook", mqtt.OnPublish},
		{"OnSessionEstablished", mqtt.OnSessionEstablished},
		{"OnSubscribed", mqtt.OnSubscribed},
		{"OnUnsubscribe", mqtt.OnUnsubscribe},
		{"OnPacketRead", mqtt.OnPacketRead},
		{"OnAuthPacket", mqtt.OnAuthPacket},
		{"OnWill", mqtt.OnWill},
		{"OnStarted", mqtt.OnStarted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := h.Provides(tc.event); got != want[tc.event] {
				t.Fatalf("Provides = %v, want %v", got, want[tc.event])
			}
		})
	}
}

// OnACLCheck allows every write (publishes are the delivery hook's) and
// decides reads by the policy for the connection's identity; a client
// without identity reads nothing. Each refused read is reported.
func TestOnACLCheck(t *testing.T) {
	f := newFixture(t, setup{allowAnonymous: true})
	clients := map[string]*mqtt.Client{
		"user":      f.mustAuthed(t, "10001", f.token(t, "10001"), "phone"),
		"admin":     f.mustAuthed(t, opsName, opsPassword, "console"),
		"service":   f.mustAuthed(t, backendName, backendPassword, "worker"),
		"anonymous": f.mustAuthed(t, "", "", "kiosk"),
		"unknown":   f.s.NewClient(nil, "t", "stranger", false),
	}
	for _, tc := range []struct {
		name  string
		who   string
		topic string
		write bool
		want  bool
	}{
		{"user reads own inbox", "user", "inbox/10001", false, true},
		{"user reads another inbox", "user", "inbox/10002", false, false},
		{"user reads inbox wildcard", "user", "inbox/+", false, false},
		{"user reads broadcast", "user", "broadcast", false, true},
		{"user reads $SYS", "user", "$SYS/broker/uptime", false, false},
		{"user reads opened topic", "user", "public/x", false, true},
		{"user reads %c topic", "user", "clients/phone", false, true},
		{"user reads %u topic", "user", "devices/10001/t", false, true},
		{"user reads unopened topic", "user", "private/x", false, false},
		{"user writes another inbox: allowed here", "user", "inbox/10002", true, true},
		{"user writes $SYS: allowed here", "user", "$SYS/x", true, true},
		{"admin reads $SYS", "admin", "$SYS/broker/uptime", false, true},
		{"admin reads own inbox", "admin", "inbox/ops", false, true},
		{"admin reads a user inbox", "admin", "inbox/10001", false, false},
		{"service reads $SYS", "service", "$SYS/broker/uptime", false, false},
		{"service reads own inbox", "service", "inbox/backend", false, true},
		{"anonymous reads lobby", "anonymous", "lobby/x", false, true},
		{"anonymous reads broadcast", "anonymous", "broadcast", false, false},
		{"anonymous reads opened topic", "anonymous", "public/x", false, false},
		{"anonymous reads empty inbox", "anonymous", "inbox/", false, false},
		{"anonymous writes anything: allowed here", "anonymous", "inbox/10001", true, true},
		{"unknown client reads broadcast", "unknown", "broadcast", false, false},
		{"unknown client reads anything", "unknown", "public/x", false, false},
		{"unknown client writes: allowed here", "unknown", "public/x", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			denied := f.denied.Load()
			if got := f.h.OnACLCheck(clients[tc.who], tc.topic, tc.write); got != tc.want {
				t.Fatalf("OnACLCheck(%q, write %v) = %v, want %v", tc.topic, tc.write, got, tc.want)
			}
			wantDenied := int64(0)
			if !tc.want {
				wantDenied = 1
			}
			if n := f.denied.Load() - denied; n != wantDenied {
				t.Fatalf("OnACLDenied called %d times, want %d", n, wantDenied)
			}
		})
	}
}

// Refused reads are logged with who and what, except $SYS (clients poll
// it) and the subscription-limit placeholder; a client without identity
// is not logged. Lines per connection are rate limited.
func TestOnACLCheck_Logging(t *testing.T) {
	f := newFixture(t, setup{})
	cl := f.mustAuthed(t, "10001", f.token(t, "10001"), "phone")
	f.h.OnACLCheck(cl, "inbox/10002", false)
	if lines := f.logs.Lines("read denied", "uid=10001", "client=phone", "filter=inbox/10002"); len(lines) != 1 {
		t.Fatalf("read denied lines %q, want one naming uid, client and filter", lines)
	}
	f.h.OnACLCheck(cl, "$SYS/broker/uptime", false)
	f.h.OnACLCheck(cl, tooManyFilter, false)
	f.h.OnACLCheck(f.s.NewClient(nil, "t", "stranger", false), "private/x", false)
	if lines := f.logs.Lines("read denied"); len(lines) != 1 {
		t.Fatalf("read denied lines %q, want still only the first", lines)
	}
	// Rate limited per connection: a burst of 10, then 1/s.
	start := time.Now()
	for i := 0; i < 40; i++ {
		f.h.OnACLCheck(cl, fmt.Sprintf("private/%d", i), false)
	}
	limit := 10 + int(time.Since(start).Seconds()) + 1
	if n := len(f.logs.Lines("read denied", "client=phone")); n > limit || n < 10 {
		t.Fatalf("%d read denied lines for 41 refusals, want between 10 and %d", n, limit)
	}
	// Another connection has its own budget.
	other := f.mustAuthed(t, "10002", f.token(t, "10002"), "tablet")
	f.h.OnACLCheck(other, "inbox/10001", false)
	if lines := f.logs.Lines("read denied", "uid=10002"); len(lines) != 1 {
		t.Fatalf("read denied lines of another connection %q, want 1", lines)
	}
}

// Refused logins are logged with a reason but never the password or token,
// and the lines are rate limited per remote IP (the port does not matter),
// while OnAuthFailure hears of every refusal.
func TestLoginRefusal_Logging(t *testing.T) {
	f := newFixture(t, setup{})
	tok := f.token(t, "10001")
	secrets := []string{tok, opsPassword, "guessed-password-8812"}
	for i, tc := range []struct {
		name, user, pass, reason string
	}{
		{"token of another uid", "10002", tok, "token_subject"},
		{"account, wrong password", opsName, "guessed-password-8812", "bad_password"},
		{"user, account password", "10001", opsPassword, "token_malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remote := fmt.Sprintf("198.51.100.%d:4000", i+1) // one IP each: no rate limit
			if _, ok := f.authed(t, tc.user, tc.pass, "c", remote); ok {
				t.Fatal("accepted")
			}
			if lines := f.logs.Lines("login refused", "reason="+tc.reason, "username="+tc.user); len(lines) != 1 {
				t.Fatalf("log lines %q, want one with the reason", lines)
			}
		})
	}
	for _, s := range secrets {
		if strings.Contains(f.logs.String(), s) {
			t.Fatalf("a secret is in the log:\n%s", f.logs.String())
		}
	}

	t.Run("rate limited per IP", func(t *testing.T) {
		n := f.failureCount()
		start := time.Now()
		for port := 1; port <= 40; port++ {
			f.authed(t, "10001", "not-a-token-5521", "c", fmt.Sprintf("203.0.113.7:%d", port))
		}
		limit := 10 + int(time.Since(start).Seconds()) + 1
		if got := len(f.failuresSince(n)); got != 40 {
			t.Fatalf("OnAuthFailure heard %d of 40 refusals", got)
		}
		if lines := len(f.logs.Lines("login refused", "203.0.113.7")); lines > limit || lines < 10 {
			t.Fatalf("%d log lines for 40 refusals from one IP, want between 10 and %d", lines, limit)
		}
		f.authed(t, "10001", "not-a-token-5521", "c", "203.0.113.8:1")
		if lines := len(f.logs.Lines("login refused", "203.0.113.8")); lines != 1 {
			t.Fatalf("another IP got %d log lines, want 1", lines)
		}
	})
}

// Identities of connections that ended before their session was
// established (mochi calls no OnDisconnect for them) are swept on a later
// login; identities of open connections are kept.
func TestSweepIdentities(t *testing.T) {
	f := newFixture(t, setup{})
	tok := f.token(t, "10001")
	lost := f.mustAuthed(t, "10001", tok, "lost")
	open := f.mustAuthed(t, "10001", tok, "open")
	lost.Stop(nil)     // the CONNACK could not be written
	f.h.swept.Store(0) // the last sweep was long ago
	later := f.mustAuthed(t, "10001", tok, "later")
	if _, ok := f.h.Identity(lost); ok {
		t.Fatal("identity of an ended connection not swept")
	}
	for _, cl := range []*mqtt.Client{open, later} {
		if _, ok := f.h.Identity(cl); !ok {
			t.Fatalf("identity of open client %q swept", cl.ID)
		}
	}
}

// When a persistent session expires, mochi forgets the client but leaves
// its subscriptions in the topic index: OnClientExpired removes them.
func TestOnClientExpired(t *testing.T) {
	t.Run("direct", func(t *testing.T) {
		f := newFixture(t, setup{})
		w := f.connect(t, v5, login{user: "10001", pass: f.token(t, "10001"), id: "phone", expiry: 3600})
		if codes := w.subscribe(t, 1, "inbox/10001", "public/#"); codes[0] != granted1 || codes[1] != granted1 {
			t.Fatalf("SUBACK % x", codes)
		}
		id := internalID("10001", "phone")
		cl := f.client(t, id)
		w.drop(t)
		if !subscribed(f.s, id, "inbox/10001") || !subscribed(f.s, id, "public/x") {
			t.Fatal("a persistent session lost its subscriptions when its connection ended")
		}
		f.h.OnClientExpired(cl)
		for _, topic := range []string{"inbox/10001", "public/x"} {
			if subscribed(f.s, id, topic) {
				t.Fatalf("expired session still subscribed to %s", topic)
			}
		}
		if n := cl.State.Subscriptions.Len(); n != 0 {
			t.Fatalf("expired client holds %d subscriptions", n)
		}
	})
	t.Run("by mochi's expiry loop", func(t *testing.T) {
		f := newFixture(t, setup{serve: true})
		w := f.connect(t, v5, login{user: "10001", pass: f.token(t, "10001"), id: "phone", expiry: 1})
		if codes := w.subscribe(t, 1, "public/#"); codes[0] != granted1 {
			t.Fatalf("SUBACK % x", codes)
		}
		id := internalID("10001", "phone")
		w.drop(t)
		waitUntil(t, "the session to expire", func() bool {
			_, ok := f.s.Clients.Get(id)
			return !ok
		})
		if subscribed(f.s, id, "public/x") {
			t.Fatal("expired session's subscription left in the topic index")
		}
	})
}

// subscribed reports whether the topic index delivers topic to client id.
func subscribed(s *mqtt.Server, id, topic string) bool {
	_, ok := s.Topics.Subscribers(topic).Subscriptions[id]
	return ok
}

// Many clients logging in, subscribing and leaving at once: every one gets
// its own decisions, and nothing is left behind (run with -race).
func TestConcurrentLogins(t *testing.T) {
	f := newFixture(t, setup{})
	const n = 16
	uid := func(i int) string { return fmt.Sprint(20000 + i%n) }
	conns := make([]*wire, n)
	for i := range conns {
		conns[i] = f.connect(t, byte(4+i%2), login{user: uid(i), pass: f.token(t, uid(i)), id: "c", clean: true})
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes, err := w.trySubscribe(1, "inbox/"+uid(i), "inbox/"+uid(i+1), "public/a", "#")
			if err != nil {
				errs <- fmt.Errorf("%s: %w", uid(i), err)
				return
			}
			refused := byte(v3Failure)
			if w.version == v5 {
				refused = v5NotAuth
			}
			if want := []byte{granted1, refused, granted1, refused}; string(codes) != string(want) {
				errs <- fmt.Errorf("%s: SUBACK % x, want % x", uid(i), codes, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, w := range conns {
		w.drop(t)
		if _, ok := f.s.Clients.Get(internalID(uid(i), "c")); ok {
			t.Fatalf("client %d still registered after its clean connection ended", i)
		}
	}
	if n := identityCount(f.h); n != 0 {
		t.Fatalf("%d identities left after every connection ended", n)
	}
}

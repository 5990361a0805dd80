package access

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/auth"
)

// connectCase is one CONNECT and how it must be answered.
type connectCase struct {
	name   string
	l      login
	reason string // OnAuthFailure reason; "" for an accepted login
	code5  byte   // first CONNACK reason code for MQTT 5
	code3  byte   // first CONNACK return code for MQTT 3.1.1
	// bcrypts, if not -1, is how many bcrypt comparisons the login costs.
	bcrypts int
}

// CONNACK codes.
const (
	connAccepted    = 0x00
	v3IDRejected    = 0x02 // identifier rejected
	v3NotAuthorized = 0x05
	v5BadUserPass   = 0x86
	v5NotAuthorized = 0x87
	v5IDNotValid    = 0x85
)

// connectCases are the logins every protocol version must answer alike.
func connectCases(t *testing.T, f *fixture) []connectCase {
	now := time.Now()
	tok := f.token(t, "10001")
	other, err := auth.NewTokens([]byte("another-secret-another-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	forged, err := other.Mint(auth.Claims{UID: "10001", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	profile, err := f.tokens.Mint(auth.Claims{UID: "10001", TTL: time.Hour, Nickname: "Alice", Role: auth.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	exp := now.Add(time.Hour).Unix()
	refused := func(name string, l login, reason string) connectCase {
		return connectCase{name: name, l: l, reason: reason, code5: v5BadUserPass, code3: v3NotAuthorized, bcrypts: -1}
	}
	willDenied := func(name string, l login) connectCase {
		return connectCase{name: name, l: l, reason: "will_denied", code5: v5NotAuthorized, code3: v3NotAuthorized, bcrypts: -1}
	}
	accepted := func(name string, l login) connectCase {
		return connectCase{name: name, l: l, code5: connAccepted, code3: connAccepted, bcrypts: -1}
	}
	long := strings.Repeat("c", DefaultMaxClientID)
	return []connectCase{
		accepted("user token", login{user: "10001", pass: tok, id: "phone"}),
		accepted("user token with admin role and profile", login{user: "10001", pass: profile, id: "phone"}),
		accepted("admin account", login{user: opsName, pass: opsPassword, id: "console"}),
		accepted("service account", login{user: backendName, pass: backendPassword, id: "worker"}),
		accepted("client id at the limit", login{user: "10001", pass: tok, id: long}),
		accepted("empty client id with clean session", login{user: "10001", pass: tok, clean: true}),
		accepted("will on an opened topic", login{user: "10001", pass: tok, id: "w", will: "public/status"}),

		refused("no credentials, anonymous off", login{id: "anon"}, "anonymous_disabled"),
		refused("password without username", login{pass: "secret-no-user", id: "x"}, "invalid_username"),
		refused("username with a space", login{user: "bad name", pass: tok, id: "x"}, "invalid_username"),
		refused("username with a slash", login{user: "../10001", pass: tok, id: "x"}, "invalid_username"),
		refused("username with a wildcard", login{user: "+", pass: tok, id: "x"}, "invalid_username"),
		refused("username with the id separator", login{user: "10001|x", pass: tok, id: "x"}, "invalid_username"),
		refused("username over 64 bytes", login{user: strings.Repeat("1", 65), pass: tok, id: "x"}, "invalid_username"),
		refused("admin account, wrong password", login{user: opsName, pass: "wrong-password-4411", id: "x"}, "bad_password"),
		refused("admin account, no password", login{user: opsName, id: "x"}, "bad_password"),
		refused("admin account, a user token as password", login{user: opsName, pass: tok, id: "x"}, "bad_password"),
		refused("service account, admin password", login{user: backendName, pass: opsPassword, id: "x"}, "bad_password"),
		refused("user, no password", login{user: "10001", id: "x"}, "token_malformed"),
		refused("user, garbage token", login{user: "10001", pass: "not-a-token-5521", id: "x"}, "token_malformed"),
		refused("user, token over 4096 bytes", login{user: "10001", pass: strings.Repeat("a", auth.MaxTokenBytes+1), id: "x"}, "token_malformed"),
		refused("user, token of another uid", login{user: "10002", pass: tok, id: "x"}, "token_subject"),
		refused("user, token signed with another secret", login{user: "10001", pass: forged, id: "x"}, "token_signature"),
		refused("user, expired token", login{user: "10001", id: "x", pass: signJWT(t, testSecret, jwt.SigningMethodHS256,
			jwt.MapClaims{"sub": "10001", "exp": now.Add(-time.Minute).Unix()})}, "token_expired"),
		refused("user, token not yet valid", login{user: "10001", id: "x", pass: signJWT(t, testSecret, jwt.SigningMethodHS256,
			jwt.MapClaims{"sub": "10001", "exp": exp, "nbf": now.Add(time.Hour).Unix()})}, "token_not_yet_valid"),
		refused("user, HS512 with the same secret", login{user: "10001", id: "x", pass: signJWT(t, testSecret, jwt.SigningMethodHS512,
			jwt.MapClaims{"sub": "10001", "exp": exp})}, "token_algorithm"),
		refused("user, alg none", login{user: "10001", id: "x", pass: algNoneJWT("10001")}, "token_algorithm"),
		refused("user, token claiming the service role", login{user: "10001", id: "x", pass: signJWT(t, testSecret, jwt.SigningMethodHS256,
			jwt.MapClaims{"sub": "10001", "exp": exp, "role": "service"})}, "token_claims"),
		refused("user, token without exp", login{user: "10001", id: "x", pass: signJWT(t, testSecret, jwt.SigningMethodHS256,
			jwt.MapClaims{"sub": "10001"})}, "token_claims"),

		{name: "client id over the limit, before any credential check",
			l:      login{user: opsName, pass: "wrong-password-4411", id: long + "c"},
			reason: "client_id_too_long", code5: v5IDNotValid, code3: v3IDRejected, bcrypts: 0},
		{name: "multibyte client id over the byte limit",
			l:      login{user: "10001", pass: tok, id: strings.Repeat("é", DefaultMaxClientID/2+1)},
			reason: "client_id_too_long", code5: v5IDNotValid, code3: v3IDRejected, bcrypts: 0},

		willDenied("will on another user's inbox", login{user: "10001", pass: tok, id: "w", will: "inbox/10002"}),
		willDenied("will on the own inbox", login{user: "10001", pass: tok, id: "w", will: "inbox/10001"}),
		willDenied("will on broadcast", login{user: "10001", pass: tok, id: "w", will: "broadcast"}),
		willDenied("will on $SYS", login{user: "10001", pass: tok, id: "w", will: "$SYS/broker/uptime"}),
		willDenied("will on a request topic", login{user: "10001", pass: tok, id: "w", will: "im/sendmsg"}),
		willDenied("will on im", login{user: "10001", pass: tok, id: "w", will: "im"}),
		willDenied("admin will on im/systemadmin", login{user: opsName, pass: opsPassword, id: "w", will: "im/systemadmin"}),
		willDenied("will on an unopened topic", login{user: "10001", pass: tok, id: "w", will: "private/x"}),
		willDenied("will on a wildcard topic", login{user: "10001", pass: tok, id: "w", will: "public/+"}),
	}
}

// Every login gets the CONNACK code its protocol version defines, the
// refusal reason is reported, a refused connection is closed, and nothing
// of it is left behind: no identity, no client, no secret in the log.
func TestConnect_Codes(t *testing.T) {
	for _, version := range []byte{v311, v5} {
		t.Run(versionName(version), func(t *testing.T) {
			f := newFixture(t, setup{})
			for _, tc := range connectCases(t, f) {
				t.Run(tc.name, func(t *testing.T) {
					failures, idents, bcrypts := f.failureCount(), identityCount(f.h), f.accounts.Comparisons()
					tc.l.clean = true // no session outlives its row
					w, ack := f.dial(t, version, tc.l)
					want := tc.code3
					if version == v5 {
						want = tc.code5
					}
					if ack.ReasonCode != want {
						t.Fatalf("CONNACK %#x, want %#x (reasons %v)", ack.ReasonCode, want, f.failuresSince(failures))
					}
					if ack.SessionPresent {
						t.Fatal("CONNACK says session present")
					}
					if tc.bcrypts >= 0 {
						if n := f.accounts.Comparisons() - bcrypts; n != uint64(tc.bcrypts) {
							t.Fatalf("%d bcrypt comparisons, want %d", n, tc.bcrypts)
						}
					}
					if tc.reason == "" {
						if got := f.failuresSince(failures); len(got) != 0 {
							t.Fatalf("accepted login reported failures %v", got)
						}
						w.ping(t)
						if n := identityCount(f.h); n != idents+1 {
							t.Fatalf("%d identities after the login, want %d", n, idents+1)
						}
						w.drop(t)
						if n := identityCount(f.h); n != idents {
							t.Fatalf("%d identities after the connection ended, want %d", n, idents)
						}
						return
					}
					// Refused: nothing but CONNACKs, then a closed connection.
					for _, pk := range w.rest(t) {
						if pk.FixedHeader.Type != packets.Connack {
							t.Fatalf("refused connection got packet type %d", pk.FixedHeader.Type)
						}
					}
					if err := w.finished(t); err == nil {
						t.Fatal("EstablishConnection returned no error for a refused login")
					}
					if got := f.failuresSince(failures); len(got) != 1 || got[0] != tc.reason {
						t.Fatalf("OnAuthFailure reasons %v, want [%s]", got, tc.reason)
					}
					if n := identityCount(f.h); n != idents {
						t.Fatalf("%d identities after a refused login, want %d", n, idents)
					}
					for _, id := range []string{tc.l.id, internalID(tc.l.user, tc.l.id)} {
						if _, ok := f.s.Clients.Get(id); ok {
							t.Fatalf("refused client %q is registered", id)
						}
					}
					if len(tc.l.pass) >= 8 && strings.Contains(f.logs.String(), tc.l.pass[:min(len(tc.l.pass), 64)]) {
						t.Fatal("the log holds the password or token of a refused login")
					}
				})
			}
		})
	}
}

// A refused 3.1.1 login gets exactly these bytes and then a closed socket:
// CONNACK return code 5 (not authorized) for bad credentials and for a will
// the account may not publish to (the hook's CONNACK, then mochi's), return
// code 2 (identifier rejected) for a client id over the limit.
func TestConnect_RefusalBytes311(t *testing.T) {
	f := newFixture(t, setup{})
	for _, tc := range []struct {
		name string
		l    login
		want string
	}{
		{"bad credentials", login{user: "10001", pass: "not-a-token-5521", id: "x"}, "20 02 00 05"},
		{"no credentials", login{id: "x"}, "20 02 00 05"},
		{"client id too long", login{user: "10001", id: strings.Repeat("x", DefaultMaxClientID+1)}, "20 02 00 02"},
		{"will denied", login{user: opsName, pass: opsPassword, id: "x", will: "inbox/10001"}, "20 02 00 05 20 02 00 05"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmt.Sprintf("% x", f.rawExchange(t, v311, tc.l)); got != tc.want {
				t.Fatalf("server wrote %s, want %s", got, tc.want)
			}
		})
	}
}

// The login is refused before anything else is looked at once the client id
// is over Options.MaxClientID; a custom limit replaces the default.
func TestConnect_MaxClientIDOption(t *testing.T) {
	f := newFixture(t, setup{maxClientID: 8})
	tok := f.token(t, "10001")
	for _, tc := range []struct {
		name string
		id   string
		want byte
	}{
		{"empty: mochi assigns one", "", connAccepted},
		{"at the limit", "12345678", connAccepted},
		{"one byte over", "123456789", v5IDNotValid},
		{"default limit no longer applies", strings.Repeat("x", DefaultMaxClientID), v5IDNotValid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, ack := f.dial(t, v5, login{user: "10001", pass: tok, id: tc.id, clean: true})
			if ack.ReasonCode != tc.want {
				t.Fatalf("CONNACK %#x, want %#x", ack.ReasonCode, tc.want)
			}
			w.drop(t)
		})
	}
}

// OnConnect on its own: only the client id length decides, the refusal is
// reported and answered with the identifier CONNACK.
func TestOnConnect_ClientIDLimit(t *testing.T) {
	f := newFixture(t, setup{maxClientID: 4})
	for _, tc := range []struct {
		name    string
		id      string
		wantErr bool
	}{
		{"empty", "", false},
		{"at the limit", "abcd", false},
		{"over the limit", "abcde", true},
		{"multibyte: counted in bytes", "éé√", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := f.failureCount()
			cl := f.s.NewClient(nil, "t", tc.id, false)
			cl.Net.Remote = "192.0.2.9:1"
			err := f.h.OnConnect(cl, packets.Packet{Connect: packets.ConnectParams{ClientIdentifier: tc.id}})
			if (err != nil) != tc.wantErr {
				t.Fatalf("OnConnect = %v, want error %v", err, tc.wantErr)
			}
			want := []string{}
			if tc.wantErr {
				want = []string{"client_id_too_long"}
			}
			if got := f.failuresSince(n); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("failures %v, want %v", got, want)
			}
		})
	}
}

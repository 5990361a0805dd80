package access

import (
	"io"
	"log/slog"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/auth"
)

// newHook returns an access hook with one static account ("ops",
// password "right-password") and token logins.
func newHook(t *testing.T) (*Hook, *auth.Accounts, *auth.Tokens) {
	t.Helper()
	hash, err := auth.HashPassword("right-password")
	if err != nil {
		t.Fatal(err)
	}
	accounts, err := auth.NewAccounts([]auth.Account{{Name: "ops", PasswordHash: hash, Role: auth.RoleAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	policy, err := acl.NewPolicy(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := new(Hook)
	if err := h.Init(&Options{Server: mqtt.New(nil), Tokens: tokens, Accounts: accounts, Policy: policy,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	return h, accounts, tokens
}

func connect(h *Hook, username, password, clientID string) bool {
	cl := h.opts.Server.NewClient(nil, "t", clientID, false)
	cl.Net.Remote = "192.0.2.1:5000"
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{ClientIdentifier: clientID, Username: []byte(username), Password: []byte(password)}}
	return h.OnConnectAuthenticate(cl, pk)
}

// Every refused login of a valid-looking name costs the same bcrypt work,
// whether the name is a static account or not: timing does not tell which
// accounts exist.
func TestLoginCostDoesNotRevealAccounts(t *testing.T) {
	h, accounts, tokens := newHook(t)
	good, err := tokens.Mint(auth.Claims{UID: "10021", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, user, password string
		ok                   bool
		bcrypts              uint64
	}{
		{"static account, wrong password", "ops", "guess", false, 1},
		{"unknown name, wrong password", "nosuchuser", "guess", false, 1},
		{"user, bad token", "10021", "not-a-token", false, 1},
		// Over bcrypt's 72 bytes no hash can match: refused at once for
		// every name, account or not.
		{"user, token of another uid", "10022", good, false, 0},
		{"static account, token as password", "ops", good, false, 0},
		{"user, valid token", "10021", good, true, 0},
		{"invalid name: cannot be an account", "bad name!", "guess", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := accounts.Comparisons()
			if got := connect(h, tc.user, tc.password, "c"); got != tc.ok {
				t.Fatalf("login = %v, want %v", got, tc.ok)
			}
			if n := accounts.Comparisons() - before; n != tc.bcrypts {
				t.Fatalf("%d bcrypt comparisons, want %d", n, tc.bcrypts)
			}
		})
	}
}

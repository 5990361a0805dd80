package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/api"
	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/inbox"
	pebblestore "github.com/inboxmq/inboxmq/inbox/pebble"
	"github.com/inboxmq/inboxmq/internal/logbuf"
	"github.com/inboxmq/inboxmq/messaging"
)

// The secret signing the fixture's tokens, and another one.
const (
	secret      = "api-test-secret-api-test-secret-0123456789"
	otherSecret = "another-secret-another-secret-0123456789"
)

// Static accounts of the fixture: an operator, a back-end service and a
// static account with the plain user role.
const (
	adminName       = "admin"
	adminPassword   = "admin-test-password"
	serviceName     = "backend"
	servicePassword = "service-test-password"
	opsName         = "ops"
	opsPassword     = "ops-test-password"
)

// Users.
const (
	alice = "10001"
	bob   = "10021"
	carol = "10031"
	dave  = "10041" // never sends nor receives anything
)

// maxContent is the service's content limit in the fixture.
const maxContent = 4096

// The error message every 400 bad_json answer carries.
const badJSONMessage = "request body must be a JSON object of the documented shape"

// recorder is a messaging.Delivery that records what the service handed on.
type recorder struct {
	mu     sync.Mutex
	stored []inbox.Message
}

func (r *recorder) Stored(m []inbox.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stored = append(r.stored, m...)
}

func (r *recorder) Live([]string, []byte) error           { return nil }
func (r *recorder) ProfileChanged(string, string, string) {}
func (r *recorder) Pushed(string, uint64)                 {}

var _ messaging.Delivery = (*recorder)(nil)

// len is how many entries were handed on so far: a mark for since.
func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.stored)
}

// since returns the entries handed on after mark.
func (r *recorder) since(mark int) []inbox.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.stored[mark:])
}

// kick is one recorded Connections.Kick call.
type kick struct{ uid, reason string }

// conns is the fixture's Connections: a table of online devices and a
// record of kicks.
type conns struct {
	mu     sync.Mutex
	online map[string]int
	kicks  []kick
}

func (c *conns) Kick(uid, reason string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kicks = append(c.kicks, kick{uid, reason})
	return c.online[uid]
}

func (c *conns) Online(uid string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.online[uid]
}

func (c *conns) recorded() []kick {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.kicks)
}

// logBuffer collects log output (internal/logbuf).
type logBuffer = logbuf.Buffer

// credentials is what Options.Credentials hands out; tests swap it.
type credentials struct {
	tokens   *auth.Tokens
	accounts *auth.Accounts
}

// fixture is the API on a real HTTP server, over a real pebble store and
// the real messaging service.
type fixture struct {
	url      string
	client   *http.Client
	dir      string
	store    *pebblestore.Store
	svc      *messaging.Service
	deliv    *recorder
	conns    *conns
	tokens   *auth.Tokens
	accounts *auth.Accounts
	creds    atomic.Pointer[credentials]
	logs     *logBuffer
	opts     api.Options // what the handler at url was built with
	// closeStore closes the store (once; the cleanup calls it too).
	closeStore func()
}

// newFixture starts the API with MaxBody maxBody (0: the API's default).
func newFixture(t *testing.T, maxBody int64) *fixture {
	t.Helper()
	return newFixtureStore(t, maxBody, inbox.Options{})
}

// newFixtureStore is newFixture with the store's retention options.
func newFixtureStore(t *testing.T, maxBody int64, storeOpts inbox.Options) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), deliv: &recorder{}, conns: &conns{online: map[string]int{}}, logs: &logBuffer{}}
	store, err := pebblestore.Open(f.dir, storeOpts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	f.store = store
	var once sync.Once
	f.closeStore = func() {
		once.Do(func() {
			if err := store.Close(); err != nil {
				t.Errorf("close store: %v", err)
			}
		})
	}
	t.Cleanup(f.closeStore) // runs last
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.svc, err = messaging.New(messaging.Options{Store: store, Limits: bridge.Limits{MaxContent: maxContent}, Log: log})
	if err != nil {
		t.Fatalf("messaging.New: %v", err)
	}
	t.Cleanup(f.svc.Close)
	f.svc.Attach(f.deliv)

	if f.tokens, err = auth.NewTokens([]byte(secret)); err != nil {
		t.Fatalf("NewTokens: %v", err)
	}
	f.accounts = newAccounts(t)
	f.creds.Store(&credentials{f.tokens, f.accounts})

	f.opts = api.Options{
		Store:       store,
		Service:     f.svc,
		Connections: f.conns,
		Credentials: func() auth.Credentials {
			c := f.creds.Load()
			return auth.Credentials{Tokens: c.tokens, Accounts: c.accounts}
		},
		MaxBody: maxBody,
		Limits:  bridge.Limits{MaxContent: maxContent},
		Log:     log,
	}
	srv := httptest.NewServer(api.New(f.opts, api.AllRoutes))
	t.Cleanup(srv.Close) // runs first
	f.url, f.client = srv.URL, srv.Client()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("api log:\n%s", f.logs.String())
		}
	})
	return f
}

var (
	hashOnce sync.Once
	hashes   map[string]string // password -> bcrypt hash at the lowest cost
)

// newAccounts builds the static accounts with real bcrypt hashes, at
// bcrypt's lowest cost to keep the tests quick.
func newAccounts(t *testing.T) *auth.Accounts {
	t.Helper()
	hashOnce.Do(func() {
		hashes = map[string]string{}
		for _, pw := range []string{adminPassword, servicePassword, opsPassword} {
			h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
			if err != nil {
				panic(err)
			}
			hashes[pw] = string(h)
		}
	})
	a, err := auth.NewAccounts([]auth.Account{
		{Name: adminName, PasswordHash: hashes[adminPassword], Role: auth.RoleAdmin},
		{Name: serviceName, PasswordHash: hashes[servicePassword], Role: auth.RoleService},
		{Name: opsName, PasswordHash: hashes[opsPassword], Role: auth.RoleUser},
	})
	if err != nil {
		t.Fatalf("NewAccounts: %v", err)
	}
	return a
}

// userToken mints a user token with a nickname and an avatar.
func (f *fixture) userToken(t *testing.T, uid string) string {
	t.Helper()
	return mint(t, f.tokens, auth.Claims{UID: uid, Nickname: "nick-" + uid, Avatar: "https://a.example/" + uid + ".png", TTL: time.Hour})
}

// adminToken mints a token with the admin role.
func (f *fixture) adminToken(t *testing.T, uid string) string {
	t.Helper()
	return mint(t, f.tokens, auth.Claims{UID: uid, Role: auth.RoleAdmin, TTL: time.Hour})
}

func mint(t *testing.T, tokens *auth.Tokens, c auth.Claims) string {
	t.Helper()
	tok, err := tokens.Mint(c)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}

// signed signs claims with key in HS256, for tokens Mint refuses to make
// (expired, not yet valid, other roles).
func signed(t *testing.T, key string, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return tok
}

// unsigned makes an alg "none" token.
func unsigned(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatalf("sign none: %v", err)
	}
	return tok
}

// resigned swaps the claims of token for claims, keeping its signature.
func resigned(t *testing.T, token string, claims jwt.MapClaims) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not three segments", token)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// cred sets a request's credentials; nil sends none.
type cred func(*http.Request)

func bearer(token string) cred {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

func basic(name, password string) cred {
	return func(r *http.Request) { r.SetBasicAuth(name, password) }
}

// authorization sets the Authorization header as given.
func authorization(v string) cred {
	return func(r *http.Request) { r.Header.Set("Authorization", v) }
}

// response is an API answer.
type response struct {
	status int
	header http.Header
	raw    []byte
}

// do sends a request to the API and reads the whole answer.
func (f *fixture) do(t *testing.T, method, path string, c cred, body string) response {
	t.Helper()
	r, err := f.try(method, path, c, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// try is do for goroutines other than the test's.
func (f *fixture) try(method, path string, c cred, body string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, f.url+path, rd)
	if err != nil {
		return response{}, fmt.Errorf("new request %s %s: %w", method, path, err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c != nil {
		c(req)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, raw: raw}, nil
}

// decode decodes the answer's JSON into v, numbers as json.Number.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.raw))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("answer %d is not JSON: %v: %s", r.status, err, r.raw)
	}
}

// object decodes the answer as a JSON object.
func (r response) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	r.decode(t, &m)
	return m
}

// wantStatus fails unless the answer has status.
func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q, want no-store", cc)
	}
}

// wantOK checks an answer of status with body {"ok":true}.
func wantOK(t *testing.T, r response, status int) {
	t.Helper()
	wantStatus(t, r, status)
	if got := strings.TrimSpace(string(r.raw)); got != `{"ok":true}` {
		t.Fatalf("body %s, want {\"ok\":true}", got)
	}
}

// wantSent checks the answer of an endpoint that stores a message or a
// notice: status, {"ok":true,"msgid":...,"time":...}. It returns the msgid.
func wantSent(t *testing.T, r response, status int) string {
	t.Helper()
	wantStatus(t, r, status)
	var body struct {
		OK    bool   `json:"ok"`
		MsgID string `json:"msgid"`
		Time  int64  `json:"time"`
	}
	r.decode(t, &body)
	if !body.OK || !inbox.ValidID(body.MsgID) || body.Time <= 0 {
		t.Fatalf("body %s, want ok, the msgid and the time", r.raw)
	}
	return body.MsgID
}

// leaks are strings that must never reach a client: store, file and
// library internals, and every secret of the fixture.
func (f *fixture) leaks() []string {
	return []string{"pebble", "closed", "inbox:", "bridge:", "auth:", ".go", "goroutine", "panic",
		"$broadcast", "$notices", "search", "append", "seq", f.dir, secret, otherSecret,
		adminPassword, servicePassword, opsPassword}
}

// wantError checks an error answer: status, and a body that is exactly
// {"error":{"code":code,"message":...}} with a message free of internals.
func (f *fixture) wantError(t *testing.T, r response, status int, code string) string {
	t.Helper()
	wantStatus(t, r, status)
	var body map[string]json.RawMessage
	r.decode(t, &body)
	if len(body) != 1 || body["error"] == nil {
		t.Fatalf("error body %s: want only the key error", r.raw)
	}
	var e map[string]any
	if err := json.Unmarshal(body["error"], &e); err != nil {
		t.Fatalf("error %s: %v", body["error"], err)
	}
	gotCode, ok1 := e["code"].(string)
	msg, ok2 := e["message"].(string)
	if len(e) != 2 || !ok1 || !ok2 {
		t.Fatalf("error %s: want exactly string code and message", body["error"])
	}
	if gotCode != code {
		t.Fatalf("error code %q, want %q: %s", gotCode, code, r.raw)
	}
	if msg == "" {
		t.Fatalf("error %s has an empty message", r.raw)
	}
	for _, leak := range f.leaks() {
		if strings.Contains(strings.ToLower(msg), strings.ToLower(leak)) {
			t.Fatalf("error message %q leaks %q", msg, leak)
		}
	}
	return msg
}

// wantUnauthorized checks a 401 with its challenge.
func (f *fixture) wantUnauthorized(t *testing.T, r response) {
	t.Helper()
	f.wantError(t, r, http.StatusUnauthorized, "unauthorized")
	if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="inboxmq"` {
		t.Fatalf("WWW-Authenticate %q", got)
	}
}

var ctx = context.Background()

func user(uid string) messaging.Actor {
	return messaging.Actor{UID: uid, Role: acl.RoleUser, Nickname: "nick-" + uid, Avatar: "https://a.example/" + uid + ".png"}
}

var adminActor = messaging.Actor{UID: adminName, Role: acl.RoleAdmin}

// send sends a direct message through the service and returns its msgid.
func (f *fixture) send(t *testing.T, from, to, text string) string {
	t.Helper()
	m, err := f.svc.SendMessage(ctx, user(from), to, text, "x-"+text, "cid-"+text)
	if err != nil {
		t.Fatalf("send %s -> %s: %v", from, to, err)
	}
	return m.ID
}

// notice sends a notice through the service (to uids, or to everyone) and
// returns its msgid.
func (f *fixture) notice(t *testing.T, n messaging.Notice) string {
	t.Helper()
	if _, err := f.svc.SendNotice(ctx, adminActor, n); err != nil {
		t.Fatalf("send notice: %v", err)
	}
	owner := inbox.BroadcastInbox
	if len(n.UIDs) > 0 {
		owner = n.UIDs[0]
	}
	got := f.thread(t, owner, inbox.NoticeThread)
	if len(got) == 0 || got[0].Content != n.Content {
		t.Fatalf("notice %q not found in %s", n.Content, owner)
	}
	return got[0].ID
}

// thread reads a whole thread from the store, newest first.
func (f *fixture) thread(t *testing.T, uid, thread string) []inbox.Message {
	t.Helper()
	msgs, err := f.store.Thread(ctx, uid, thread, 0, 1<<20)
	if err != nil {
		t.Fatalf("store thread %s/%s: %v", uid, thread, err)
	}
	return msgs
}

// inboxOf reads uid's whole inbox from the store, oldest first.
func (f *fixture) inboxOf(t *testing.T, uid string) []inbox.Message {
	t.Helper()
	msgs, err := f.store.Read(ctx, uid, 0, 1<<20)
	if err != nil {
		t.Fatalf("store read %s: %v", uid, err)
	}
	return msgs
}

// unread reads GET /api/v1/unread for uid.
func (f *fixture) unread(t *testing.T, uid string) api.Unread {
	t.Helper()
	r := f.do(t, "GET", "/api/v1/unread", bearer(f.userToken(t, uid)), "")
	wantStatus(t, r, http.StatusOK)
	var u api.Unread
	r.decode(t, &u)
	return u
}

// pad returns prefix + spaces + suffix, exactly size bytes long.
func pad(t *testing.T, prefix, suffix string, size int) string {
	t.Helper()
	n := size - len(prefix) - len(suffix)
	if n < 0 {
		t.Fatalf("cannot pad %q...%q to %d bytes", prefix, suffix, size)
	}
	return prefix + strings.Repeat(" ", n) + suffix
}

// ids returns the msgids of messages.
func ids(msgs []api.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.MsgID
	}
	return out
}

package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/inbox"
)

// denied is a row of credentials every endpoint must refuse with 401.
type denied struct {
	name string
	cred cred
}

// deniedCredentials are the credentials no endpoint accepts.
func (f *fixture) deniedCredentials(t *testing.T) []denied {
	t.Helper()
	now := time.Now()
	valid := f.userToken(t, bob)
	return []denied{
		{"no credentials", nil},
		{"empty bearer", authorization("Bearer ")},
		{"garbage bearer", bearer("not-a-token")},
		{"token without the Bearer scheme", authorization(valid)},
		{"other scheme", authorization("Token " + valid)},
		{"expired token", bearer(signed(t, secret, jwt.MapClaims{"sub": bob, "iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()}))},
		{"token not yet valid", bearer(signed(t, secret, jwt.MapClaims{"sub": bob, "nbf": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()}))},
		{"token without exp", bearer(signed(t, secret, jwt.MapClaims{"sub": bob, "iat": now.Unix()}))},
		{"token signed with another secret", bearer(signed(t, otherSecret, jwt.MapClaims{"sub": bob, "exp": now.Add(time.Hour).Unix()}))},
		{"alg none token", bearer(unsigned(t, jwt.MapClaims{"sub": bob, "exp": now.Add(time.Hour).Unix()}))},
		{"tampered token", bearer(resigned(t, valid, jwt.MapClaims{"sub": alice, "exp": now.Add(time.Hour).Unix()}))},
		{"token with the service role", bearer(signed(t, secret, jwt.MapClaims{"sub": bob, "role": "service", "exp": now.Add(time.Hour).Unix()}))},
		{"token with an unknown role", bearer(signed(t, secret, jwt.MapClaims{"sub": bob, "role": "root", "exp": now.Add(time.Hour).Unix()}))},
		{"token with an invalid uid", bearer(signed(t, secret, jwt.MapClaims{"sub": "a/b", "exp": now.Add(time.Hour).Unix()}))},
		{"token for a static account name", bearer(f.adminToken(t, adminName))},
		{"basic: wrong password", basic(adminName, "wrong-password")},
		{"basic: unknown account", basic("nobody", adminPassword)},
		{"basic: user uid with a token as password", basic(bob, valid)},
		{"basic: empty password", basic(adminName, "")},
		{"basic: password over 72 bytes", basic(adminName, adminPassword+strings.Repeat("x", 80))},
	}
}

// Every user endpoint refuses requests without valid credentials, with a
// 401 that says nothing about why, and does nothing; a valid token works.
func TestUserEndpoints_Authentication(t *testing.T) {
	f := newFixture(t, 0)
	fromAlice := f.send(t, alice, bob, "hello")
	bobSent := f.send(t, bob, alice, "hi")
	endpoints := []struct {
		name, method, path, body string
		ok                       int // status for bob's valid token
	}{
		{"conversations", "GET", "/api/v1/conversations", "", http.StatusOK},
		{"messages", "GET", "/api/v1/conversations/" + alice + "/messages", "", http.StatusOK},
		{"mark read", "POST", "/api/v1/conversations/" + alice + "/read", `{"msgid":"` + fromAlice + `"}`, http.StatusOK},
		{"delete", "DELETE", "/api/v1/messages/" + bobSent, "", http.StatusOK},
		{"notices", "GET", "/api/v1/notices", "", http.StatusOK},
		{"notices read", "POST", "/api/v1/notices/read", `{"msgid":"` + fromAlice + `"}`, http.StatusOK},
		{"unread", "GET", "/api/v1/unread", "", http.StatusOK},
	}
	deny := f.deniedCredentials(t)
	mark := f.deliv.len()
	for _, ep := range endpoints {
		t.Run(ep.name, func(t *testing.T) {
			for _, d := range deny {
				t.Run(d.name, func(t *testing.T) {
					f.wantUnauthorized(t, f.do(t, ep.method, ep.path, d.cred, ep.body))
				})
			}
		})
	}
	// Nothing happened: no receipt, no deletion, nothing read.
	if got := f.deliv.since(mark); len(got) != 0 {
		t.Fatalf("refused requests stored %+v", got)
	}
	if u := f.unread(t, bob); u.Peers[alice] != 1 {
		t.Fatalf("after refused requests bob's unread is %+v, want 1 from alice", u)
	}
	if got := f.thread(t, alice, bob); len(got) != 2 {
		t.Fatalf("after refused requests alice's conversation holds %d messages, want 2", len(got))
	}
	// Refusals are logged without the tokens or passwords presented.
	logs := f.logs.String()
	for _, d := range deny {
		req, _ := http.NewRequest("GET", "/", nil)
		if d.cred != nil {
			d.cred(req)
		}
		h := req.Header.Get("Authorization")
		if _, tok, ok := strings.Cut(h, " "); ok && len(tok) > 8 && strings.Contains(logs, tok) {
			t.Errorf("%s: the log holds the credentials presented", d.name)
		}
	}
	for _, pw := range []string{adminPassword, "wrong-password"} {
		if strings.Contains(logs, pw) {
			t.Errorf("the log holds the password %q", pw)
		}
	}
	if !strings.Contains(logs, "api token refused") || !strings.Contains(logs, "api login refused") {
		t.Errorf("refusals not logged:\n%s", logs)
	}

	for _, ep := range endpoints {
		t.Run(ep.name+"/valid token", func(t *testing.T) {
			r := f.do(t, ep.method, ep.path, bearer(f.userToken(t, bob)), ep.body)
			wantStatus(t, r, ep.ok)
		})
	}
}

// Static accounts of any role, and admin tokens, may use the user endpoints
// for their own (empty) inbox.
func TestUserEndpoints_StaticAccountsAndAdminTokens(t *testing.T) {
	f := newFixture(t, 0)
	f.send(t, alice, bob, "not for the admin")
	for _, tc := range []struct {
		name string
		cred cred
	}{
		{"admin account", basic(adminName, adminPassword)},
		{"service account", basic(serviceName, servicePassword)},
		{"user-role account", basic(opsName, opsPassword)},
		{"admin token", bearer(f.adminToken(t, "20001"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, "GET", "/api/v1/conversations", tc.cred, "")
			wantStatus(t, r, http.StatusOK)
			if got := strings.TrimSpace(string(r.raw)); got != `{"conversations":[],"next":""}` {
				t.Fatalf("conversations %s, want none", got)
			}
			r = f.do(t, "GET", "/api/v1/conversations/"+alice+"/messages", tc.cred, "")
			wantStatus(t, r, http.StatusOK)
			if got := strings.TrimSpace(string(r.raw)); got != `{"messages":[],"next":""}` {
				t.Fatalf("messages %s, want none", got)
			}
		})
	}
}

// Admin endpoints: users and user-role accounts get 403, bad credentials
// 401, and neither has any effect; admin and service accounts and admin
// tokens are served.
func TestAdminEndpoints_Authorization(t *testing.T) {
	f := newFixture(t, 0)
	f.conns.online[bob] = 1
	now := time.Now()
	endpoints := []struct {
		name, method, path, body string
		ok                       int
	}{
		{"send notice", "POST", "/api/v1/notices", `{"uid":10021,"content":"hello"}`, http.StatusAccepted},
		{"online", "GET", "/api/v1/online?uid=10021", "", http.StatusOK},
		{"kick", "POST", "/api/v1/kick", `{"uid":10021}`, http.StatusOK},
	}
	rows := []struct {
		name   string
		cred   cred
		status int // 0: the endpoint's ok status
		code   string
	}{
		{"no credentials", nil, http.StatusUnauthorized, "unauthorized"},
		{"garbage bearer", bearer("x.y.z"), http.StatusUnauthorized, "unauthorized"},
		{"expired admin token", bearer(signed(t, secret, jwt.MapClaims{"sub": "20001", "role": "admin", "exp": now.Add(-time.Hour).Unix()})), http.StatusUnauthorized, "unauthorized"},
		{"admin role in a token signed with another secret", bearer(signed(t, otherSecret, jwt.MapClaims{"sub": "20001", "role": "admin", "exp": now.Add(time.Hour).Unix()})), http.StatusUnauthorized, "unauthorized"},
		{"admin role forged into a user token", bearer(resigned(t, f.userToken(t, bob), jwt.MapClaims{"sub": bob, "role": "admin", "exp": now.Add(time.Hour).Unix()})), http.StatusUnauthorized, "unauthorized"},
		{"admin account, wrong password", basic(adminName, servicePassword), http.StatusUnauthorized, "unauthorized"},
		{"token for the admin account name", bearer(f.adminToken(t, adminName)), http.StatusUnauthorized, "unauthorized"},
		{"user token", bearer(f.userToken(t, bob)), http.StatusForbidden, "forbidden"},
		{"user-role static account", basic(opsName, opsPassword), http.StatusForbidden, "forbidden"},
		{"admin token", bearer(f.adminToken(t, "20001")), 0, ""},
		{"admin account", basic(adminName, adminPassword), 0, ""},
		{"service account", basic(serviceName, servicePassword), 0, ""},
	}
	for _, ep := range endpoints {
		t.Run(ep.name, func(t *testing.T) {
			for _, row := range rows {
				t.Run(row.name, func(t *testing.T) {
					notices, kicks := len(f.thread(t, bob, inbox.NoticeThread)), len(f.conns.recorded())
					r := f.do(t, ep.method, ep.path, row.cred, ep.body)
					allowed := row.status == 0
					switch {
					case allowed:
						wantStatus(t, r, ep.ok)
					case row.status == http.StatusUnauthorized:
						f.wantUnauthorized(t, r)
					default:
						f.wantError(t, r, row.status, row.code)
					}
					gotNotices, gotKicks := len(f.thread(t, bob, inbox.NoticeThread))-notices, len(f.conns.recorded())-kicks
					wantNotices, wantKicks := 0, 0
					if allowed && ep.name == "send notice" {
						wantNotices = 1
					}
					if allowed && ep.name == "kick" {
						wantKicks = 1
					}
					if gotNotices != wantNotices || gotKicks != wantKicks {
						t.Fatalf("stored %d notices and kicked %d times, want %d and %d", gotNotices, gotKicks, wantNotices, wantKicks)
					}
				})
			}
		})
	}
}

// Credentials are looked up per request: a secret rotation or an accounts
// reload applies to the next request, and nil verifiers refuse everyone.
func TestCredentials_PerRequest(t *testing.T) {
	f := newFixture(t, 0)
	oldToken := f.userToken(t, bob)
	rotated, err := auth.NewTokens([]byte(otherSecret))
	if err != nil {
		t.Fatal(err)
	}
	newToken := mint(t, rotated, auth.Claims{UID: bob, TTL: time.Hour})
	get := func(t *testing.T, c cred) response {
		t.Helper()
		return f.do(t, "GET", "/api/v1/unread", c, "")
	}
	for _, step := range []struct {
		name  string
		creds credentials
		cred  cred
		ok    bool
	}{
		{"old secret, old token", credentials{f.tokens, f.accounts}, bearer(oldToken), true},
		{"old secret, token of the new secret", credentials{f.tokens, f.accounts}, bearer(newToken), false},
		{"new secret, old token", credentials{rotated, f.accounts}, bearer(oldToken), false},
		{"new secret, new token", credentials{rotated, f.accounts}, bearer(newToken), true},
		{"no token verifier", credentials{nil, f.accounts}, bearer(newToken), false},
		{"no token verifier, account", credentials{nil, f.accounts}, basic(adminName, adminPassword), true},
		{"no accounts, account", credentials{rotated, nil}, basic(adminName, adminPassword), false},
		{"no accounts, token", credentials{rotated, nil}, bearer(newToken), true},
		// Without the accounts table a token for an account name is a user.
		{"no accounts, token named like an account", credentials{rotated, nil}, bearer(mint(t, rotated, auth.Claims{UID: adminName, TTL: time.Hour})), true},
		{"nothing configured", credentials{nil, nil}, basic(adminName, adminPassword), false},
	} {
		t.Run(step.name, func(t *testing.T) {
			c := step.creds
			f.creds.Store(&c)
			r := get(t, step.cred)
			if step.ok {
				wantStatus(t, r, http.StatusOK)
			} else {
				f.wantUnauthorized(t, r)
			}
		})
	}
}

// Unknown endpoints answer a JSON 404, and a wrong method on a path that
// is served a JSON 405 with an Allow header naming the methods it takes,
// with or without credentials (before authentication: which methods a
// path takes is in the OpenAPI document anyway).
func TestUnknownEndpoints(t *testing.T) {
	f := newFixture(t, 0)
	for _, tc := range []struct {
		name, method, path string
		cred               cred
		allow              string // "": 404
	}{
		{"unknown path", "GET", "/api/v1/nope", nil, ""},
		{"unknown version", "GET", "/api/v2/conversations", bearer(f.userToken(t, bob)), ""},
		{"api root", "GET", "/api/", nil, ""},
		{"unknown path below an endpoint", "GET", "/api/v1/conversations/10001/messages/x", nil, ""},
		{"wrong method on a user endpoint", "PUT", "/api/v1/conversations", bearer(f.userToken(t, bob)), "GET, HEAD"},
		{"wrong method, no credentials", "POST", "/api/v1/unread", nil, "GET, HEAD"},
		{"GET on the delete and edit endpoint", "GET", "/api/v1/messages/1", bearer(f.userToken(t, bob)), "PUT, DELETE"},
		{"GET on the send endpoint", "GET", "/api/v1/messages", basic(adminName, adminPassword), "POST"},
		{"DELETE on a user and admin path", "DELETE", "/api/v1/notices", basic(adminName, adminPassword), "GET, HEAD, POST"},
		{"GET on the kick endpoint", "GET", "/api/v1/kick", nil, "POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, tc.method, tc.path, tc.cred, "")
			if tc.allow == "" {
				f.wantError(t, r, http.StatusNotFound, "not_found")
				return
			}
			f.wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Fatalf("Allow: %q, want %q", got, tc.allow)
			}
		})
	}
}

// Request bodies are limited to MaxBody bytes: at the limit the request
// is served, one byte over it is refused with 413 and has no effect.
func TestRequestBodyLimit(t *testing.T) {
	const limit = 512
	f := newFixture(t, limit)
	f.conns.online[bob] = 2
	msgid := f.send(t, alice, bob, "hello")
	admin := basic(adminName, adminPassword)
	user := bearer(f.userToken(t, bob))
	endpoints := []struct {
		name, path     string
		cred           cred
		prefix, suffix string
		ok             int
	}{
		{"kick", "/api/v1/kick", admin, `{"uid":10021,"reason":"`, `"}`, http.StatusOK},
		{"send notice", "/api/v1/notices", admin, `{"uid":10021,"content":"`, `"}`, http.StatusAccepted},
		{"mark read", "/api/v1/conversations/" + alice + "/read", user, `{"msgid":"` + msgid + `"`, `}`, http.StatusOK},
		{"notices read", "/api/v1/notices/read", user, `{"msgid":"` + msgid + `"`, `}`, http.StatusOK},
	}
	for _, ep := range endpoints {
		for _, size := range []struct {
			name string
			n    int
			ok   bool
		}{
			{"at the limit", limit, true},
			{"one byte over", limit + 1, false},
			{"twice the limit", 2 * limit, false},
		} {
			t.Run(ep.name+"/"+size.name, func(t *testing.T) {
				body := pad(t, ep.prefix, ep.suffix, size.n)
				if ep.name == "kick" || ep.name == "send notice" {
					// Pad inside the string, so the value really is that long.
					body = ep.prefix + strings.Repeat("x", size.n-len(ep.prefix)-len(ep.suffix)) + ep.suffix
				}
				if len(body) != size.n {
					t.Fatalf("body is %d bytes, want %d", len(body), size.n)
				}
				kicks, mark := len(f.conns.recorded()), f.deliv.len()
				r := f.do(t, "POST", ep.path, ep.cred, body)
				if size.ok {
					wantStatus(t, r, ep.ok)
					return
				}
				f.wantError(t, r, http.StatusRequestEntityTooLarge, "too_large")
				if len(f.conns.recorded()) != kicks || f.deliv.len() != mark {
					t.Fatalf("a refused body had an effect: kicks %v, stored %v", f.conns.recorded()[kicks:], f.deliv.since(mark))
				}
			})
		}
	}
}

// Without MaxBody the limit is 256 KiB.
func TestRequestBodyLimit_Default(t *testing.T) {
	const limit = 256 << 10
	f := newFixture(t, 0)
	prefix, suffix := `{"uid":10021,"reason":"`, `"}`
	for _, tc := range []struct {
		name   string
		size   int
		status int
	}{
		{"at the default limit", limit, http.StatusOK},
		{"one byte over the default limit", limit + 1, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := prefix + strings.Repeat("r", tc.size-len(prefix)-len(suffix)) + suffix
			r := f.do(t, "POST", "/api/v1/kick", basic(adminName, adminPassword), body)
			if tc.status == http.StatusOK {
				wantStatus(t, r, tc.status)
				return
			}
			f.wantError(t, r, tc.status, "too_large")
		})
	}
	if got := f.conns.recorded(); len(got) != 1 || len(got[0].reason) != limit-len(prefix)-len(suffix) {
		t.Fatalf("kicks %d, want exactly the one within the limit", len(got))
	}
}

// Bodies that are not JSON objects of the documented shape are refused
// with 400 bad_json and have no effect.
func TestBadJSON(t *testing.T) {
	f := newFixture(t, 0)
	msgid := f.send(t, alice, bob, "hello")
	admin := basic(adminName, adminPassword)
	user := bearer(f.userToken(t, bob))
	endpoints := []struct {
		name, path string
		cred       cred
		wrongType  string // a body with a field of the wrong JSON type
	}{
		{"mark read", "/api/v1/conversations/" + alice + "/read", user, `{"msgid":` + msgid + `}`},
		{"notices read", "/api/v1/notices/read", user, `{"msgid":` + msgid + `}`},
		{"send notice", "/api/v1/notices", admin, `{"uid":10021,"content":5}`},
		{"kick", "/api/v1/kick", admin, `{"uid":10021,"reason":false}`},
	}
	for _, ep := range endpoints {
		for _, tc := range []struct{ name, body string }{
			{"empty body", ""},
			{"truncated object", `{"msgid":`},
			{"array", `[]`},
			{"string", `"hello"`},
			{"number", `42`},
			{"not JSON", `msgid=1`},
			{"field of the wrong type", ep.wrongType},
		} {
			t.Run(ep.name+"/"+tc.name, func(t *testing.T) {
				kicks, mark := len(f.conns.recorded()), f.deliv.len()
				r := f.do(t, "POST", ep.path, ep.cred, tc.body)
				if msg := f.wantError(t, r, http.StatusBadRequest, "bad_json"); msg != badJSONMessage {
					t.Fatalf("message %q", msg)
				}
				if len(f.conns.recorded()) != kicks || f.deliv.len() != mark {
					t.Fatal("a refused body had an effect")
				}
			})
		}
	}
	if u := f.unread(t, bob); u.Total != 1 {
		t.Fatalf("bob's unread %+v, want the message still unread", u)
	}
}

// The API does not reject unknown fields: they are ignored.
func TestUnknownFieldsIgnored(t *testing.T) {
	f := newFixture(t, 0)
	f.conns.online[bob] = 1
	admin := basic(adminName, adminPassword)
	r := f.do(t, "POST", "/api/v1/kick", admin, `{"uid":10021,"reason":"r","ttl":5}`)
	wantStatus(t, r, http.StatusOK)
	if got := f.conns.recorded(); len(got) != 1 || got[0] != (kick{bob, "r"}) {
		t.Fatalf("kicks %+v", got)
	}
	r = f.do(t, "POST", "/api/v1/notices", admin, `{"uid":10021,"content":"c","title":"t"}`)
	msgid := wantSent(t, r, http.StatusAccepted)
	if got := f.thread(t, bob, inbox.NoticeThread); len(got) != 1 || got[0].Content != "c" || got[0].ID != msgid {
		t.Fatalf("bob's notices %+v", got)
	}
}

// With the store closed every endpoint that touches it answers an error
// without details: 503 when the store certainly kept nothing of a write
// (inbox.ErrNotStored), 500 otherwise. The details go to the log.
func TestStoreFailure(t *testing.T) {
	f := newFixture(t, 0)
	msgid := f.send(t, alice, bob, "hello")
	sent := f.send(t, bob, alice, "hi")
	f.closeStore()
	user := bearer(f.userToken(t, bob))
	admin := basic(adminName, adminPassword)
	for _, tc := range []struct {
		name, method, path string
		cred               cred
		body               string
		status             int
	}{
		{"conversations", "GET", "/api/v1/conversations", user, "", http.StatusInternalServerError},
		{"messages", "GET", "/api/v1/conversations/" + alice + "/messages", user, "", http.StatusInternalServerError},
		{"messages before", "GET", "/api/v1/conversations/" + alice + "/messages?before=" + msgid, user, "", http.StatusInternalServerError},
		{"notices", "GET", "/api/v1/notices", user, "", http.StatusInternalServerError},
		{"notices before", "GET", "/api/v1/notices?before=" + msgid, user, "", http.StatusInternalServerError},
		{"unread", "GET", "/api/v1/unread", user, "", http.StatusInternalServerError},
		{"mark read", "POST", "/api/v1/conversations/" + alice + "/read", user, `{"msgid":"` + msgid + `"}`, http.StatusInternalServerError},
		{"notices read", "POST", "/api/v1/notices/read", user, `{"msgid":"` + msgid + `"}`, http.StatusInternalServerError},
		{"delete", "DELETE", "/api/v1/messages/" + sent, user, "", http.StatusInternalServerError},
		{"send notice to a uid", "POST", "/api/v1/notices", admin, `{"uid":10021,"content":"c"}`, http.StatusServiceUnavailable},
		{"send notice to everyone", "POST", "/api/v1/notices", admin, `{"content":"c"}`, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, tc.method, tc.path, tc.cred, tc.body)
			msg := f.wantError(t, r, tc.status, "internal")
			want := "internal error, try again later"
			if tc.status == http.StatusServiceUnavailable {
				want = "not stored, try again later"
			}
			if msg != want {
				t.Fatalf("message %q, want %q", msg, want)
			}
		})
	}
	// The cause is in the log, with the request it failed.
	logs := f.logs.String()
	if !strings.Contains(logs, "api request failed") || !strings.Contains(logs, "closed") || !strings.Contains(logs, "path=/api/v1/unread") {
		t.Fatalf("the store failure is not logged:\n%s", logs)
	}
	// Endpoints that do not touch the store still work.
	f.conns.online[bob] = 1
	r := f.do(t, "GET", "/api/v1/online?uid=10021", admin, "")
	wantStatus(t, r, http.StatusOK)
}

// The handler serves concurrent requests (run with -race): every notice
// sent in parallel is stored once and every read succeeds.
func TestConcurrentRequests(t *testing.T) {
	f := newFixture(t, 0)
	const workers, each = 8, 5
	admin := bearer(f.adminToken(t, "20001"))
	user := bearer(f.userToken(t, bob))
	var wg sync.WaitGroup
	errs := make(chan string, 2*workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r, err := f.try("POST", "/api/v1/notices", admin, fmt.Sprintf(`{"uid":10021,"content":"n-%d-%d"}`, w, i))
				if err != nil || r.status != http.StatusAccepted {
					errs <- fmt.Sprintf("send notice: %v %d %s", err, r.status, r.raw)
				}
				r, err = f.try("GET", "/api/v1/unread", user, "")
				if err != nil || r.status != http.StatusOK {
					errs <- fmt.Sprintf("unread: %v %d %s", err, r.status, r.raw)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	got := f.thread(t, bob, inbox.NoticeThread)
	seen := map[string]bool{}
	for _, m := range got {
		seen[m.Content] = true
	}
	if len(got) != workers*each || len(seen) != workers*each {
		t.Fatalf("bob holds %d notices (%d distinct), want %d", len(got), len(seen), workers*each)
	}
	if u := f.unread(t, bob); u.Notices["0"] != workers*each || u.Total != workers*each {
		t.Fatalf("unread %+v", u)
	}
}

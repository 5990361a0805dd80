package auth

import (
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// cheapHash is a bcrypt hash at MinCost, for tests where the cost is beside
// the point.
func cheapHash(tb testing.TB, password string) string {
	tb.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		tb.Fatalf("bcrypt: %v", err)
	}
	return string(h)
}

func newTestAccounts(tb testing.TB) *Accounts {
	tb.Helper()
	a, err := NewAccounts([]Account{
		{Name: "ops", PasswordHash: cheapHash(tb, "ops-pass"), Role: RoleAdmin},
		{Name: "push-svc", PasswordHash: cheapHash(tb, "push-pass"), Role: RoleService},
		{Name: "bot", PasswordHash: cheapHash(tb, "bot-pass"), Role: RoleUser},
	})
	if err != nil {
		tb.Fatalf("NewAccounts: %v", err)
	}
	return a
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	a := newTestAccounts(t)
	tests := []struct {
		name     string
		user     string
		password string
		want     Identity
		ok       bool
	}{
		{name: "admin right password", user: "ops", password: "ops-pass", want: Identity{UID: "ops", Role: RoleAdmin}, ok: true},
		{name: "service right password", user: "push-svc", password: "push-pass", want: Identity{UID: "push-svc", Role: RoleService}, ok: true},
		{name: "user right password", user: "bot", password: "bot-pass", want: Identity{UID: "bot", Role: RoleUser}, ok: true},
		{name: "wrong password", user: "ops", password: "ops-pasS"},
		{name: "another account's password", user: "ops", password: "push-pass"},
		{name: "password with a suffix", user: "ops", password: "ops-pass\x00"},
		{name: "empty password", user: "ops", password: ""},
		{name: "unknown name", user: "nobody", password: "ops-pass"},
		{name: "name differs in case", user: "OPS", password: "ops-pass"},
		{name: "empty name", user: "", password: "ops-pass"},
		{name: "password over 72 bytes sharing the first 72",
			user: "ops", password: "ops-pass" + strings.Repeat("x", 70)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := a.Authenticate(tc.user, tc.password)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("Authenticate(%q) = %+v, %v; want %+v, %v", tc.user, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// bcrypt only looks at the first 72 bytes; Authenticate must not.
func TestAuthenticateLongPassword(t *testing.T) {
	t.Parallel()
	pw := strings.Repeat("p", 72)
	a, err := NewAccounts([]Account{{Name: "svc", PasswordHash: cheapHash(t, pw), Role: RoleService}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Authenticate("svc", pw); !ok {
		t.Fatal("72-byte password refused")
	}
	if _, ok := a.Authenticate("svc", pw+"extra"); ok {
		t.Fatal("password accepted on its first 72 bytes")
	}
}

func TestAuthenticateCache(t *testing.T) {
	t.Parallel()
	a := newTestAccounts(t)
	first, ok := a.Authenticate("push-svc", "push-pass")
	if !ok {
		t.Fatal("first Authenticate failed")
	}
	n := a.bcrypts.Load()
	second, ok := a.Authenticate("push-svc", "push-pass")
	if !ok || second != first {
		t.Fatalf("cached Authenticate = %+v, %v; want %+v, true", second, ok, first)
	}
	if got := a.bcrypts.Load(); got != n {
		t.Fatalf("cache hit ran bcrypt: %d comparisons, want %d", got, n)
	}

	// A different password misses the cache, costs a bcrypt, and fails.
	if _, ok := a.Authenticate("push-svc", "push-pass2"); ok {
		t.Fatal("wrong password accepted after a cached success")
	}
	if got := a.bcrypts.Load(); got != n+1 {
		t.Fatalf("wrong password: %d comparisons, want %d", got, n+1)
	}

	// Failures are never cached: each one costs a bcrypt.
	for range 3 {
		if _, ok := a.Authenticate("ops", "nope"); ok {
			t.Fatal("wrong password accepted")
		}
	}
	if got := a.bcrypts.Load(); got != n+4 {
		t.Fatalf("after failures: %d comparisons, want %d", got, n+4)
	}
	a.mu.Lock()
	_, cachedOps := a.cache["ops"]
	a.mu.Unlock()
	if cachedOps {
		t.Fatal("a failed check left a cache entry")
	}

	// Unknown names cost a bcrypt too (against the dummy) and cache nothing.
	if _, ok := a.Authenticate("ghost", "push-pass"); ok {
		t.Fatal("unknown name accepted")
	}
	if got := a.bcrypts.Load(); got != n+5 {
		t.Fatalf("unknown name: %d comparisons, want %d", got, n+5)
	}
}

// The cache entry is tied to the bcrypt hash it was checked against, so a
// password change shuts out the old password even while it is cached.
func TestAuthenticateCacheFollowsHash(t *testing.T) {
	t.Parallel()
	a := newTestAccounts(t)
	if _, ok := a.Authenticate("push-svc", "push-pass"); !ok {
		t.Fatal("Authenticate failed")
	}
	old := a.byName["push-svc"]
	a.byName["push-svc"] = &account{hash: []byte(cheapHash(t, "rotated")), id: old.id}

	if _, ok := a.Authenticate("push-svc", "push-pass"); ok {
		t.Fatal("old password accepted from the cache after the hash changed")
	}
	if _, ok := a.Authenticate("push-svc", "rotated"); !ok {
		t.Fatal("new password refused")
	}
	n := a.bcrypts.Load()
	if _, ok := a.Authenticate("push-svc", "rotated"); !ok {
		t.Fatal("new password refused on the second try")
	}
	if got := a.bcrypts.Load(); got != n {
		t.Fatal("new password not cached")
	}
}

func TestAuthenticateCacheBounded(t *testing.T) {
	t.Parallel()
	var list []Account
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		list = append(list, Account{Name: name, PasswordHash: cheapHash(t, "pw-"+name), Role: RoleService})
	}
	a, err := NewAccounts(list)
	if err != nil {
		t.Fatal(err)
	}
	a.cacheMax = 2
	for _, acc := range list {
		for range 2 {
			if _, ok := a.Authenticate(acc.Name, "pw-"+acc.Name); !ok {
				t.Fatalf("Authenticate(%q) failed", acc.Name)
			}
		}
		a.mu.Lock()
		size := len(a.cache)
		_, last := a.cache[acc.Name]
		a.mu.Unlock()
		if size > 2 {
			t.Fatalf("cache holds %d entries, want at most 2", size)
		}
		if !last {
			t.Fatalf("latest success for %q not cached", acc.Name)
		}
	}
}

func TestAuthenticateConcurrent(t *testing.T) {
	t.Parallel()
	a := newTestAccounts(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 5 {
				switch i % 3 {
				case 0:
					if _, ok := a.Authenticate("ops", "ops-pass"); !ok {
						t.Error("right password refused")
						return
					}
				case 1:
					if _, ok := a.Authenticate("ops", "bad"); ok {
						t.Error("wrong password accepted")
						return
					}
				default:
					if _, ok := a.Authenticate("ghost", "ops-pass"); ok {
						t.Error("unknown name accepted")
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

func TestHas(t *testing.T) {
	t.Parallel()
	a := newTestAccounts(t)
	for _, tc := range []struct {
		name string
		want bool
	}{{"ops", true}, {"push-svc", true}, {"Ops", false}, {"", false}, {"nobody", false}} {
		if got := a.Has(tc.name); got != tc.want {
			t.Errorf("Has(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNewAccounts(t *testing.T) {
	t.Parallel()
	h := cheapHash(t, "pw")
	tests := []struct {
		name    string
		list    []Account
		wantErr string // substring; "" means success
	}{
		{name: "none", list: nil},
		{name: "all roles", list: []Account{
			{Name: "a", PasswordHash: h, Role: RoleAdmin},
			{Name: "s", PasswordHash: h, Role: RoleService},
			{Name: "u", PasswordHash: h, Role: RoleUser},
		}},
		{name: "$2b$ hash", list: []Account{{Name: "a", PasswordHash: h, Role: RoleAdmin}}},
		{name: "$2a$ hash", list: []Account{{Name: "a", PasswordHash: "$2a$" + h[4:], Role: RoleAdmin}}},
		{name: "$2y$ hash", list: []Account{{Name: "a", PasswordHash: "$2y$" + h[4:], Role: RoleAdmin}}},
		{name: "bad name", list: []Account{{Name: "a/b", PasswordHash: h, Role: RoleAdmin}}, wantErr: "name"},
		{name: "empty name", list: []Account{{Name: "", PasswordHash: h, Role: RoleAdmin}}, wantErr: "name"},
		{name: "name too long", list: []Account{{Name: strings.Repeat("n", 65), PasswordHash: h, Role: RoleAdmin}}, wantErr: "name"},
		{name: "duplicate", list: []Account{
			{Name: "a", PasswordHash: h, Role: RoleAdmin},
			{Name: "a", PasswordHash: h, Role: RoleService},
		}, wantErr: "duplicate"},
		{name: "bad role", list: []Account{{Name: "a", PasswordHash: h, Role: "root"}}, wantErr: "role"},
		{name: "empty role", list: []Account{{Name: "a", PasswordHash: h, Role: ""}}, wantErr: "role"},
		{name: "anonymous role", list: []Account{{Name: "a", PasswordHash: h, Role: "anonymous"}}, wantErr: "role"},
		{name: "plain-text password", list: []Account{{Name: "a", PasswordHash: "hunter2", Role: RoleAdmin}}, wantErr: "password_hash"},
		{name: "empty hash", list: []Account{{Name: "a", PasswordHash: "", Role: RoleAdmin}}, wantErr: "password_hash"},
		{name: "truncated hash", list: []Account{{Name: "a", PasswordHash: h[:30], Role: RoleAdmin}}, wantErr: "password_hash"},
		{name: "$2x$ hash", list: []Account{{Name: "a", PasswordHash: "$2x$" + h[4:], Role: RoleAdmin}}, wantErr: "password_hash"},
		{name: "cost not a number", list: []Account{{Name: "a", PasswordHash: "$2b$xx" + h[6:], Role: RoleAdmin}}, wantErr: "password_hash"},
		{name: "cost too high", list: []Account{{Name: "a", PasswordHash: "$2b$15" + h[6:], Role: RoleAdmin}}, wantErr: "cost 15"},
		{name: "sha256 crypt hash", list: []Account{{Name: "a", PasswordHash: "$5$salt$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", Role: RoleAdmin}}, wantErr: "password_hash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := NewAccounts(tc.list)
			if tc.wantErr == "" {
				if err != nil || a == nil {
					t.Fatalf("NewAccounts: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NewAccounts error = %v, want one mentioning %q", err, tc.wantErr)
			}
			for _, acc := range tc.list {
				if acc.PasswordHash != "" && strings.Contains(err.Error(), acc.PasswordHash) {
					t.Fatalf("error text contains a password hash: %q", err)
				}
			}
		})
	}
}

// The row number in the error points the operator at the bad line.
func TestNewAccountsErrorNamesRow(t *testing.T) {
	t.Parallel()
	h := cheapHash(t, "pw")
	_, err := NewAccounts([]Account{
		{Name: "fine", PasswordHash: h, Role: RoleAdmin},
		{Name: "broken", PasswordHash: h, Role: "root"},
	})
	if err == nil || !strings.Contains(err.Error(), `account 1 ("broken")`) {
		t.Fatalf("error = %v, want it to name account 1 (\"broken\")", err)
	}
}

func TestNoAccounts(t *testing.T) {
	t.Parallel()
	a, err := NewAccounts(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Authenticate("ops", "ops-pass"); ok {
		t.Fatal("empty Accounts authenticated someone")
	}
	if a.Has("ops") {
		t.Fatal("empty Accounts has ops")
	}
}

func TestHashPassword(t *testing.T) {
	t.Parallel()
	// One hash at the real cost (seconds under -race); the round trip below
	// uses the same code at MinCost.
	h, err := HashPassword("s3cret pässword")
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost([]byte(h)); err != nil || cost != 10 || !strings.HasPrefix(h, "$2a$10$") {
		t.Fatalf("HashPassword = %q (cost %d, %v), want a bcrypt hash of cost 10", h, cost, err)
	}
	if _, err := checkAccount(Account{Name: "svc", PasswordHash: h, Role: RoleService}); err != nil {
		t.Fatalf("config check rejects HashPassword output: %v", err)
	}
}

func TestHashPasswordRoundTrip(t *testing.T) {
	t.Parallel()
	h, err := hashPassword("s3cret pässword", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAccounts([]Account{{Name: "svc", PasswordHash: h, Role: RoleService}})
	if err != nil {
		t.Fatalf("NewAccounts rejects hashPassword output: %v", err)
	}
	if _, ok := a.Authenticate("svc", "s3cret pässword"); !ok {
		t.Fatal("hashPassword output does not authenticate")
	}
	if _, ok := a.Authenticate("svc", "s3cret passwort"); ok {
		t.Fatal("wrong password authenticates")
	}
}

func TestHashPasswordRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, pw, want string }{
		{"empty", "", "empty"},
		{"73 bytes", strings.Repeat("x", 73), "72 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := HashPassword(tc.pw); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("HashPassword error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func BenchmarkAuthenticateCached(b *testing.B) {
	a := newTestAccounts(b)
	if _, ok := a.Authenticate("push-svc", "push-pass"); !ok {
		b.Fatal("Authenticate failed")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := a.Authenticate("push-svc", "push-pass"); !ok {
			b.Fatal("Authenticate failed")
		}
	}
}

package auth

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/inboxmq/inboxmq/acl"
	"hash"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	testSecret = []byte("test-secret-0123456789abcdefghij") // exactly 32 bytes
	testNow    = time.Unix(1_750_000_000, 0)
	sentinels  = []error{
		ErrTokenMalformed, ErrTokenSignature, ErrTokenExpired, ErrTokenNotYetValid,
		ErrTokenSubject, ErrTokenAlgorithm, ErrTokenClaims,
	}
)

// newTestTokens returns Tokens over testSecret with the clock pinned to testNow.
func newTestTokens(tb testing.TB, opts ...Option) *Tokens {
	tb.Helper()
	tk, err := NewTokens(testSecret, opts...)
	if err != nil {
		tb.Fatalf("NewTokens: %v", err)
	}
	tk.now = func() time.Time { return testNow }
	return tk
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// segment is v as JSON in base64url; a string is taken as raw JSON.
func segment(tb testing.TB, v any) string {
	tb.Helper()
	if s, ok := v.(string); ok {
		return b64([]byte(s))
	}
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	return b64(b)
}

// signer returns the signature segment for a signing input.
type signer func(signing string) string

func hmacSigner(h func() hash.Hash, key []byte) signer {
	return func(signing string) string {
		m := hmac.New(h, key)
		m.Write([]byte(signing))
		return b64(m.Sum(nil))
	}
}

func noSignature(string) string { return "" }

// craft builds a compact JWS by hand so that tests can say anything in the
// header, which jwt.Token would not let them.
func craft(tb testing.TB, header, claims any, sign signer) string {
	tb.Helper()
	in := segment(tb, header) + "." + segment(tb, claims)
	return in + "." + sign(in)
}

func hs256Header() map[string]any { return map[string]any{"alg": "HS256", "typ": "JWT"} }

// baseClaims is a valid payload for alice; extra entries override or add,
// and a nil value deletes.
func baseClaims(extra map[string]any) map[string]any {
	c := map[string]any{
		"sub": "alice",
		"iat": testNow.Unix(),
		"exp": testNow.Add(time.Hour).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// good signs claims correctly with HS256 under testSecret.
func good(tb testing.TB, claims any) string {
	tb.Helper()
	return craft(tb, hs256Header(), claims, hmacSigner(sha256.New, testSecret))
}

func rsaSigner(tb testing.TB) signer {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatalf("rsa key: %v", err)
	}
	return func(signing string) string {
		d := sha256.Sum256([]byte(signing))
		sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, d[:])
		if err != nil {
			tb.Fatalf("rsa sign: %v", err)
		}
		return b64(sig)
	}
}

// flipPadBits changes only the unused low bits of the last base64 character,
// giving a second spelling of the same signature bytes.
func flipPadBits(tb testing.TB, token string) string {
	tb.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, token[len(token)-1])
	if last < 0 {
		tb.Fatal("token does not end in base64url")
	}
	return token[:len(token)-1] + string(alphabet[last^1])
}

func TestVerify(t *testing.T) {
	t.Parallel()
	tk := newTestTokens(t)
	valid := good(t, baseClaims(nil))
	parts := strings.Split(valid, ".")
	exp := testNow.Add(time.Hour)

	hs384, err := jwt.NewWithClaims(jwt.SigningMethodHS384, jwt.MapClaims(baseClaims(nil))).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	hs512, err := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims(baseClaims(nil))).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	minted, err := tk.Mint(Claims{UID: "bob", Nickname: "Bob", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		username string
		token    string
		wantErr  error    // nil: allowed
		want     Identity // checked when allowed
	}{
		// Allowed.
		{name: "minimal sub and exp", username: "alice",
			token: good(t, map[string]any{"sub": "alice", "exp": exp.Unix()}),
			want:  Identity{UID: "alice", Role: RoleUser, Expires: exp}},
		{name: "with iat", username: "alice", token: valid,
			want: Identity{UID: "alice", Role: RoleUser, Expires: exp}},
		{name: "minted", username: "bob", token: minted,
			want: Identity{UID: "bob", Nickname: "Bob", Role: RoleUser, Expires: testNow.Add(time.Minute)}},
		{name: "nickname 张三 and avatar", username: "alice",
			token: good(t, baseClaims(map[string]any{"nickname": "张三", "avatar": "https://cdn.example/a/alice.png?s=64&v=2"})),
			want:  Identity{UID: "alice", Nickname: "张三", Avatar: "https://cdn.example/a/alice.png?s=64&v=2", Role: RoleUser, Expires: exp}},
		{name: "nickname of 64 runes", username: "alice",
			token: good(t, baseClaims(map[string]any{"nickname": strings.Repeat("张", 64)})),
			want:  Identity{UID: "alice", Nickname: strings.Repeat("张", 64), Role: RoleUser, Expires: exp}},
		{name: "avatar of 1024 bytes", username: "alice",
			token: good(t, baseClaims(map[string]any{"avatar": strings.Repeat("a", 1024)})),
			want:  Identity{UID: "alice", Avatar: strings.Repeat("a", 1024), Role: RoleUser, Expires: exp}},
		{name: "admin role", username: "alice",
			token: good(t, baseClaims(map[string]any{"role": "admin"})),
			want:  Identity{UID: "alice", Role: RoleAdmin, Expires: exp}},
		{name: "explicit user role", username: "alice",
			token: good(t, baseClaims(map[string]any{"role": "user"})),
			want:  Identity{UID: "alice", Role: RoleUser, Expires: exp}},
		{name: "null profile claims read as absent", username: "alice",
			token: good(t, `{"sub":"alice","exp":1750003600,"nickname":null,"avatar":null,"role":null}`),
			want:  Identity{UID: "alice", Role: RoleUser, Expires: exp}},
		{name: "unknown claims ignored", username: "alice",
			token: good(t, baseClaims(map[string]any{"iss": "app", "aud": []string{"x"}, "jti": "1", "scope": 7})),
			want:  Identity{UID: "alice", Role: RoleUser, Expires: exp}},
		{name: "payload with - and _ in its base64url", username: "alice",
			token: good(t, baseClaims(map[string]any{"nickname": "??>>"})),
			want:  Identity{UID: "alice", Nickname: "??>>", Role: RoleUser, Expires: exp}},
		{name: "uid with dot dash underscore", username: "a.b-c_D9",
			token: good(t, baseClaims(map[string]any{"sub": "a.b-c_D9"})),
			want:  Identity{UID: "a.b-c_D9", Role: RoleUser, Expires: exp}},
		{name: "expired within leeway", username: "alice",
			token: good(t, baseClaims(map[string]any{"exp": testNow.Add(-3 * time.Second).Unix()})),
			want:  Identity{UID: "alice", Role: RoleUser, Expires: testNow.Add(-3 * time.Second)}},
		{name: "nbf and iat within leeway", username: "alice",
			token: good(t, baseClaims(map[string]any{"nbf": testNow.Add(3 * time.Second).Unix(), "iat": testNow.Add(3 * time.Second).Unix()})),
			want:  Identity{UID: "alice", Role: RoleUser, Expires: exp}},

		// Algorithm.
		{name: "alg none", username: "alice",
			token:   craft(t, map[string]any{"alg": "none", "typ": "JWT"}, baseClaims(nil), noSignature),
			wantErr: ErrTokenAlgorithm},
		{name: "alg none with a real signature", username: "alice",
			token:   craft(t, map[string]any{"alg": "none"}, baseClaims(nil), hmacSigner(sha256.New, testSecret)),
			wantErr: ErrTokenAlgorithm},
		{name: "alg NONE", username: "alice",
			token:   craft(t, map[string]any{"alg": "NONE"}, baseClaims(nil), noSignature),
			wantErr: ErrTokenAlgorithm},
		{name: "HS384 same secret", username: "alice", token: hs384, wantErr: ErrTokenAlgorithm},
		{name: "HS512 same secret", username: "alice", token: hs512, wantErr: ErrTokenAlgorithm},
		{name: "HS512 hand-made", username: "alice",
			token:   craft(t, map[string]any{"alg": "HS512"}, baseClaims(nil), hmacSigner(sha512.New, testSecret)),
			wantErr: ErrTokenAlgorithm},
		{name: "RS256", username: "alice",
			token:   craft(t, map[string]any{"alg": "RS256", "typ": "JWT"}, baseClaims(nil), rsaSigner(t)),
			wantErr: ErrTokenAlgorithm},
		{name: "ES256 header", username: "alice",
			token:   craft(t, map[string]any{"alg": "ES256"}, baseClaims(nil), hmacSigner(sha256.New, testSecret)),
			wantErr: ErrTokenAlgorithm},
		{name: "alg hs256 lower case, HS256 signature", username: "alice",
			token:   craft(t, map[string]any{"alg": "hs256"}, baseClaims(nil), hmacSigner(sha256.New, testSecret)),
			wantErr: ErrTokenAlgorithm},
		{name: "alg missing", username: "alice",
			token:   craft(t, map[string]any{"typ": "JWT"}, baseClaims(nil), hmacSigner(sha256.New, testSecret)),
			wantErr: ErrTokenAlgorithm},
		{name: "alg not a string", username: "alice",
			token:   craft(t, map[string]any{"alg": 256}, baseClaims(nil), hmacSigner(sha256.New, testSecret)),
			wantErr: ErrTokenAlgorithm},
		{name: "alg as list", username: "alice",
			token:   craft(t, map[string]any{"alg": []string{"HS256"}}, baseClaims(nil), hmacSigner(sha256.New, testSecret)),
			wantErr: ErrTokenAlgorithm},

		// Signature.
		{name: "tampered payload", username: "alice",
			token:   parts[0] + "." + segment(t, baseClaims(map[string]any{"role": "admin"})) + "." + parts[2],
			wantErr: ErrTokenSignature},
		{name: "tampered signature", username: "alice",
			token:   parts[0] + "." + parts[1] + "." + b64(make([]byte, 32)),
			wantErr: ErrTokenSignature},
		{name: "signature missing", username: "alice", token: parts[0] + "." + parts[1] + ".",
			wantErr: ErrTokenSignature},
		{name: "signature truncated", username: "alice", token: parts[0] + "." + parts[1] + "." + parts[2][:40],
			wantErr: ErrTokenSignature},
		{name: "wrong secret", username: "alice",
			token:   craft(t, hs256Header(), baseClaims(nil), hmacSigner(sha256.New, []byte("another-secret-0123456789abcdefgh"))),
			wantErr: ErrTokenSignature},
		{name: "secret with a byte appended", username: "alice",
			token:   craft(t, hs256Header(), baseClaims(nil), hmacSigner(sha256.New, append(append([]byte(nil), testSecret...), 'x'))),
			wantErr: ErrTokenSignature},

		// Time.
		{name: "expired", username: "alice",
			token:   good(t, baseClaims(map[string]any{"exp": testNow.Add(-time.Minute).Unix()})),
			wantErr: ErrTokenExpired},
		{name: "exp is now minus leeway", username: "alice",
			token:   good(t, baseClaims(map[string]any{"exp": testNow.Add(-DefaultLeeway).Unix()})),
			wantErr: ErrTokenExpired},
		{name: "exp missing", username: "alice",
			token: good(t, baseClaims(map[string]any{"exp": nil})), wantErr: ErrTokenClaims},
		{name: "exp a string", username: "alice",
			token: good(t, baseClaims(map[string]any{"exp": "tomorrow"})), wantErr: ErrTokenMalformed},
		{name: "future nbf", username: "alice",
			token:   good(t, baseClaims(map[string]any{"nbf": testNow.Add(time.Minute).Unix()})),
			wantErr: ErrTokenNotYetValid},
		{name: "future iat beyond leeway", username: "alice",
			token:   good(t, baseClaims(map[string]any{"iat": testNow.Add(10 * time.Second).Unix()})),
			wantErr: ErrTokenNotYetValid},

		// Subject.
		{name: "sub missing", username: "alice",
			token: good(t, baseClaims(map[string]any{"sub": nil})), wantErr: ErrTokenSubject},
		{name: "sub empty", username: "alice",
			token: good(t, baseClaims(map[string]any{"sub": ""})), wantErr: ErrTokenSubject},
		{name: "sub differs from username", username: "mallory", token: valid, wantErr: ErrTokenSubject},
		{name: "sub differs in case", username: "Alice", token: valid, wantErr: ErrTokenSubject},
		{name: "sub not a string", username: "alice",
			token: good(t, baseClaims(map[string]any{"sub": 42})), wantErr: ErrTokenMalformed},
		{name: "username empty", username: "", token: valid, wantErr: ErrTokenSubject},
		{name: "username with slash", username: "alice/x",
			token: good(t, baseClaims(map[string]any{"sub": "alice/x"})), wantErr: ErrTokenSubject},
		{name: "username with wildcard", username: "+",
			token: good(t, baseClaims(map[string]any{"sub": "+"})), wantErr: ErrTokenSubject},
		{name: "username of 65 characters", username: strings.Repeat("a", 65),
			token: good(t, baseClaims(map[string]any{"sub": strings.Repeat("a", 65)})), wantErr: ErrTokenSubject},
		{name: "username non-ASCII", username: "张三",
			token: good(t, baseClaims(map[string]any{"sub": "张三"})), wantErr: ErrTokenSubject},

		// Profile claims.
		{name: "role root", username: "alice",
			token: good(t, baseClaims(map[string]any{"role": "root"})), wantErr: ErrTokenClaims},
		{name: "role service in token", username: "alice",
			token: good(t, baseClaims(map[string]any{"role": "service"})), wantErr: ErrTokenClaims},
		{name: "role anonymous", username: "alice",
			token: good(t, baseClaims(map[string]any{"role": "anonymous"})), wantErr: ErrTokenClaims},
		{name: "role Admin", username: "alice",
			token: good(t, baseClaims(map[string]any{"role": "Admin"})), wantErr: ErrTokenClaims},
		{name: "role empty string", username: "alice",
			token: good(t, baseClaims(map[string]any{"role": ""})), wantErr: ErrTokenClaims},
		{name: "role a list", username: "alice",
			token: good(t, baseClaims(map[string]any{"role": []string{"admin"}})), wantErr: ErrTokenClaims},
		{name: "nickname too long", username: "alice",
			token: good(t, baseClaims(map[string]any{"nickname": strings.Repeat("张", 65)})), wantErr: ErrTokenClaims},
		{name: "nickname a number", username: "alice",
			token: good(t, baseClaims(map[string]any{"nickname": 3})), wantErr: ErrTokenClaims},
		{name: "nickname with control character", username: "alice",
			token: good(t, baseClaims(map[string]any{"nickname": "bell\a"})), wantErr: ErrTokenClaims},
		{name: "avatar too long", username: "alice",
			token: good(t, baseClaims(map[string]any{"avatar": strings.Repeat("a", 1025)})), wantErr: ErrTokenClaims},
		{name: "avatar an object", username: "alice",
			token: good(t, baseClaims(map[string]any{"avatar": map[string]string{"url": "x"}})), wantErr: ErrTokenClaims},

		// Malformed.
		{name: "empty token", username: "alice", token: "", wantErr: ErrTokenMalformed},
		{name: "oversize token", username: "alice",
			token:   good(t, baseClaims(map[string]any{"pad": strings.Repeat("x", MaxTokenBytes)})),
			wantErr: ErrTokenMalformed},
		{name: "oversize junk", username: "alice", token: strings.Repeat("a", MaxTokenBytes+1), wantErr: ErrTokenMalformed},
		{name: "garbage", username: "alice", token: "hunter2", wantErr: ErrTokenMalformed},
		{name: "dots only", username: "alice", token: "..", wantErr: ErrTokenMalformed},
		{name: "two segments", username: "alice", token: parts[0] + "." + parts[1], wantErr: ErrTokenMalformed},
		{name: "four segments", username: "alice", token: valid + "." + parts[2], wantErr: ErrTokenMalformed},
		{name: "not base64", username: "alice", token: "a*b.c$d.e!f", wantErr: ErrTokenMalformed},
		{name: "header not JSON", username: "alice",
			token: craft(t, "not json", baseClaims(nil), hmacSigner(sha256.New, testSecret)), wantErr: ErrTokenMalformed},
		{name: "claims not an object", username: "alice",
			token: good(t, `["alice"]`), wantErr: ErrTokenMalformed},
		{name: "claims not JSON", username: "alice",
			token: good(t, `{"sub":"alice",`), wantErr: ErrTokenMalformed},
		{name: "padded base64", username: "alice",
			token: parts[0] + "=." + parts[1] + "." + parts[2], wantErr: ErrTokenMalformed},
		{name: "signature with non-zero pad bits", username: "alice", token: flipPadBits(t, valid),
			wantErr: ErrTokenMalformed},
		{name: "crit header", username: "alice",
			token:   craft(t, map[string]any{"alg": "HS256", "crit": []string{"exp"}, "exp": 1}, baseClaims(nil), hmacSigner(sha256.New, testSecret)),
			wantErr: ErrTokenMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tk.Verify(tc.username, tc.token)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got != tc.want {
					t.Fatalf("Verify = %+v, want %+v", got, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tc.wantErr)
			}
			if got != (Identity{}) {
				t.Errorf("Verify returned %+v with an error", got)
			}
			n := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("error %q wraps %d sentinels, want 1", err, n)
			}
			msg := err.Error()
			if strings.Contains(msg, string(testSecret)) {
				t.Errorf("error text contains the secret: %q", msg)
			}
			for _, p := range strings.Split(tc.token, ".") {
				if len(p) >= 8 && strings.Contains(msg, p) {
					t.Errorf("error text contains part of the token: %q", msg)
				}
			}
		})
	}
}

// A payload spelled in the standard base64 alphabet (+ and / for - and _) is
// not base64url and is refused, even when correctly signed.
func TestVerifyStandardBase64(t *testing.T) {
	t.Parallel()
	p := segment(t, baseClaims(map[string]any{"nickname": "??>>"}))
	if !strings.ContainsAny(p, "-_") {
		t.Fatalf("payload %q has neither - nor _", p)
	}
	std := strings.NewReplacer("-", "+", "_", "/").Replace(p)
	tok := hs256HeaderSegment(t) + "." + std
	tok += "." + hmacSigner(sha256.New, testSecret)(tok)
	if _, err := newTestTokens(t).Verify("alice", tok); !errors.Is(err, ErrTokenMalformed) {
		t.Fatalf("standard-alphabet payload: err = %v, want %v", err, ErrTokenMalformed)
	}
}

func hs256HeaderSegment(tb testing.TB) string {
	tb.Helper()
	return segment(tb, hs256Header())
}

func TestVerifyLeeway(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    []Option
		claims  map[string]any
		wantErr error
	}{
		{name: "no leeway, expired a second ago", opts: []Option{WithLeeway(0)},
			claims: map[string]any{"exp": testNow.Add(-time.Second).Unix()}, wantErr: ErrTokenExpired},
		{name: "no leeway, exp is now", opts: []Option{WithLeeway(0)},
			claims: map[string]any{"exp": testNow.Unix()}, wantErr: ErrTokenExpired},
		{name: "no leeway, iat a second ahead", opts: []Option{WithLeeway(0)},
			claims: map[string]any{"iat": testNow.Add(time.Second).Unix()}, wantErr: ErrTokenNotYetValid},
		{name: "default leeway, nbf 6s ahead",
			claims: map[string]any{"nbf": testNow.Add(6 * time.Second).Unix()}, wantErr: ErrTokenNotYetValid},
		{name: "max leeway, nbf 25s ahead", opts: []Option{WithLeeway(MaxLeeway)},
			claims: map[string]any{"nbf": testNow.Add(25 * time.Second).Unix()}},
		{name: "max leeway, iat 31s ahead", opts: []Option{WithLeeway(MaxLeeway)},
			claims: map[string]any{"iat": testNow.Add(31 * time.Second).Unix()}, wantErr: ErrTokenNotYetValid},
		{name: "max leeway, expired 25s ago", opts: []Option{WithLeeway(MaxLeeway)},
			claims: map[string]any{"exp": testNow.Add(-25 * time.Second).Unix()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := newTestTokens(t, tc.opts...).Verify("alice", good(t, baseClaims(tc.claims)))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestNewTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secret  []byte
		opts    []Option
		wantErr string // substring; "" means success
	}{
		{name: "32 bytes", secret: testSecret},
		{name: "64 bytes", secret: make([]byte, 64)},
		{name: "31 bytes", secret: testSecret[:31], wantErr: "at least 32 bytes"},
		{name: "empty", secret: nil, wantErr: "at least 32 bytes"},
		{name: "leeway zero", secret: testSecret, opts: []Option{WithLeeway(0)}},
		{name: "leeway max", secret: testSecret, opts: []Option{WithLeeway(MaxLeeway)}},
		{name: "leeway over max", secret: testSecret, opts: []Option{WithLeeway(MaxLeeway + time.Nanosecond)}, wantErr: "leeway"},
		{name: "leeway negative", secret: testSecret, opts: []Option{WithLeeway(-time.Second)}, wantErr: "leeway"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tk, err := NewTokens(tc.secret, tc.opts...)
			if tc.wantErr == "" {
				if err != nil || tk == nil {
					t.Fatalf("NewTokens: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NewTokens error = %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func TestNewTokensCopiesSecret(t *testing.T) {
	t.Parallel()
	secret := append([]byte(nil), testSecret...)
	tk, err := NewTokens(secret)
	if err != nil {
		t.Fatal(err)
	}
	tk.now = func() time.Time { return testNow }
	secret[0] ^= 0xff
	if _, err := tk.Verify("alice", good(t, baseClaims(nil))); err != nil {
		t.Fatalf("Verify after caller changed its slice: %v", err)
	}
}

func TestMint(t *testing.T) {
	t.Parallel()
	tk := newTestTokens(t)
	tests := []struct {
		name    string
		claims  Claims
		wantErr string // substring; "" means success
	}{
		{name: "minimal", claims: Claims{UID: "alice", TTL: time.Hour}},
		{name: "full", claims: Claims{UID: "alice", Nickname: "张三", Avatar: "https://cdn.example/a.png", Role: RoleAdmin, TTL: 24 * time.Hour}},
		{name: "explicit user role", claims: Claims{UID: "alice", Role: RoleUser, TTL: time.Second}},
		{name: "largest avatar", claims: Claims{UID: "alice", Nickname: strings.Repeat("张", 64), Avatar: strings.Repeat("a", 1024), TTL: time.Hour}},
		{name: "uid invalid", claims: Claims{UID: "a/b", TTL: time.Hour}, wantErr: "uid"},
		{name: "uid empty", claims: Claims{TTL: time.Hour}, wantErr: "uid"},
		{name: "ttl zero", claims: Claims{UID: "alice"}, wantErr: "ttl"},
		{name: "ttl under a second", claims: Claims{UID: "alice", TTL: 999 * time.Millisecond}, wantErr: "ttl"},
		{name: "ttl negative", claims: Claims{UID: "alice", TTL: -time.Hour}, wantErr: "ttl"},
		{name: "role service", claims: Claims{UID: "alice", Role: RoleService, TTL: time.Hour}, wantErr: "service"},
		{name: "role root", claims: Claims{UID: "alice", Role: "root", TTL: time.Hour}, wantErr: "role"},
		{name: "nickname too long", claims: Claims{UID: "alice", Nickname: strings.Repeat("x", 65), TTL: time.Hour}, wantErr: "nickname"},
		{name: "nickname not UTF-8", claims: Claims{UID: "alice", Nickname: "\xff", TTL: time.Hour}, wantErr: "nickname"},
		{name: "nickname newline", claims: Claims{UID: "alice", Nickname: "a\nb", TTL: time.Hour}, wantErr: "nickname"},
		{name: "avatar too long", claims: Claims{UID: "alice", Avatar: strings.Repeat("a", 1025), TTL: time.Hour}, wantErr: "avatar"},
		{name: "avatar escapes past token cap", claims: Claims{UID: "alice", Avatar: strings.Repeat("<", 1024), TTL: time.Hour}, wantErr: "bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok, err := tk.Mint(tc.claims)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Mint error = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			got, err := tk.Verify(tc.claims.UID, tok)
			if err != nil {
				t.Fatalf("Verify(Mint()): %v", err)
			}
			role := tc.claims.Role
			if role == "" {
				role = RoleUser
			}
			want := Identity{UID: tc.claims.UID, Nickname: tc.claims.Nickname, Avatar: tc.claims.Avatar,
				Role: role, Expires: testNow.Add(tc.claims.TTL)}
			if got != want {
				t.Fatalf("Verify(Mint()) = %+v, want %+v", got, want)
			}
		})
	}
}

func TestMintExpires(t *testing.T) {
	t.Parallel()
	tk := newTestTokens(t, WithLeeway(0))
	tok, err := tk.Mint(Claims{UID: "alice", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	later := newTestTokens(t, WithLeeway(0))
	later.now = func() time.Time { return testNow.Add(time.Minute) }
	if _, err := later.Verify("alice", tok); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("Verify after TTL: err = %v, want %v", err, ErrTokenExpired)
	}
	other, err := NewTokens([]byte("a-different-secret-of-32-bytes!!"))
	if err != nil {
		t.Fatal(err)
	}
	other.now = tk.now
	if _, err := other.Verify("alice", tok); !errors.Is(err, ErrTokenSignature) {
		t.Fatalf("Verify under another secret: err = %v, want %v", err, ErrTokenSignature)
	}
}

func TestVerifyConcurrent(t *testing.T) {
	t.Parallel()
	tk := newTestTokens(t)
	tok, err := tk.Mint(Claims{UID: "alice", Role: RoleAdmin, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 200 {
				if i%2 == 0 {
					if _, err := tk.Verify("alice", tok); err != nil {
						t.Errorf("Verify: %v", err)
						return
					}
				} else if _, err := tk.Verify("bob", tok); !errors.Is(err, ErrTokenSubject) {
					t.Errorf("Verify for bob: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestValidUID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"letters", "alice", true},
		{"all classes", "A-z_0.9", true},
		{"one char", "a", true},
		{"64 chars", strings.Repeat("x", 64), true},
		{"empty", "", false},
		{"65 chars", strings.Repeat("x", 65), false},
		{"slash", "a/b", false},
		{"plus", "a+b", false},
		{"hash", "#", false},
		{"space", "a b", false},
		{"NUL", "a\x00", false},
		{"non-ASCII", "é", false},
		{"at sign", "a@b", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := acl.ValidUID(tc.in); got != tc.want {
				t.Fatalf("acl.ValidUID(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	tk := newTestTokens(b)
	for _, bc := range []struct {
		name   string
		claims Claims
	}{
		{"Minimal", Claims{UID: "alice", TTL: time.Hour}},
		{"Profile", Claims{UID: "alice", Nickname: "张三", Avatar: "https://cdn.example/avatars/alice.png", Role: RoleAdmin, TTL: time.Hour}},
	} {
		tok, err := tk.Mint(bc.claims)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tk.Verify("alice", tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestVerifyBearer(t *testing.T) {
	tokens, err := NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	good, err := tokens.Mint(Claims{UID: "10001", Nickname: "张三", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	id, err := tokens.VerifyBearer(good)
	if err != nil || id.UID != "10001" || id.Nickname != "张三" || id.Role != RoleUser {
		t.Fatalf("VerifyBearer(valid) = %+v, %v", id, err)
	}
	other, _ := NewTokens([]byte("another-secret-another-secret-0123"))
	forged, _ := other.Mint(Claims{UID: "10001", TTL: time.Hour})
	for _, tc := range []struct{ name, token string }{
		{"forged", forged},
		{"empty", ""},
		{"garbage", "a.b.c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tokens.VerifyBearer(tc.token); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// im/conn profiles and token claims follow one rule set.
func TestCheckProfile(t *testing.T) {
	for _, tc := range []struct {
		name, nickname, avatar string
		ok                     bool
	}{
		{"plain", "张三", "https://cdn.example/a.png", true},
		{"empty", "", "", true},
		{"relative avatar", "Bob", "avatars/10021.png", true},
		{"http, upper case", "Bob", "HTTP://cdn.example/a.png", true},
		{"colon in a path", "Bob", "avatars/a:b.png", true},
		{"NUL", "a\x00b", "", false},
		{"CR LF", "a\r\nb", "", false},
		{"BEL", "a\ab", "", false},
		{"right-to-left override", "admin\u202Egnp.exe", "", false},
		{"first strong isolate", "a\u2068b", "", false},
		{"javascript avatar", "Bob", "javascript:alert(1)//", false},
		{"data avatar", "Bob", "data:text/html,<script>", false},
		{"too long", string(make([]rune, MaxNicknameRunes+1)), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckProfile(tc.nickname, tc.avatar)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckProfile(%q, %q) = %v, want ok %v", tc.nickname, tc.avatar, err, tc.ok)
			}
			_, merr := NewTokensOrFatal(t).Mint(Claims{UID: "10021", Nickname: tc.nickname, Avatar: tc.avatar, TTL: time.Hour})
			if (merr == nil) != tc.ok {
				t.Fatalf("Mint accepts %v, CheckProfile %v: the two paths differ", merr == nil, tc.ok)
			}
		})
	}
}

func NewTokensOrFatal(t *testing.T) *Tokens {
	t.Helper()
	tk, err := NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/inboxmq/inboxmq/acl"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzVerify feeds arbitrary username/token pairs to Verify. It must never
// panic, every failure must wrap exactly one sentinel without quoting the
// token, and a success must be a token that really was signed with HS256
// under the secret for that username: an HMAC computed here, apart from the
// jwt library, has to agree.
//
// The clock is pinned, so the committed seeds in testdata/fuzz/FuzzVerify
// (minted at testNow) stay valid.
func FuzzVerify(f *testing.F) {
	tk := newTestTokens(f)
	minted := func(c Claims) string {
		tok, err := tk.Mint(c)
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	plain := minted(Claims{UID: "alice", TTL: time.Hour})
	profile := minted(Claims{UID: "alice", Nickname: "张三", Avatar: "https://cdn.example/a.png", Role: RoleAdmin, TTL: time.Hour})
	parts := strings.Split(plain, ".")

	f.Add("alice", plain)
	f.Add("alice", profile)
	f.Add("bob", plain)
	f.Add("alice", plain+"x")
	f.Add("alice", plain[:len(plain)-1])
	f.Add("alice", parts[0]+"."+parts[1]+".")
	f.Add("alice", parts[0]+"."+segment(f, baseClaims(map[string]any{"role": "admin"}))+"."+parts[2])
	f.Add("alice", craft(f, map[string]any{"alg": "none", "typ": "JWT"}, baseClaims(nil), noSignature))
	f.Add("alice", craft(f, map[string]any{"alg": "HS512"}, baseClaims(nil), hmacSigner(sha256.New, testSecret)))
	f.Add("alice", good(f, baseClaims(map[string]any{"role": "service"})))
	f.Add("alice", good(f, baseClaims(map[string]any{"exp": nil})))
	f.Add("a/b", good(f, baseClaims(map[string]any{"sub": "a/b"})))
	f.Add("alice", "")
	f.Add("", "..")
	f.Add("alice", "eyJ.eyJ.x")

	f.Fuzz(func(t *testing.T, username, token string) {
		id, err := tk.Verify(username, token)
		if err != nil {
			if id != (Identity{}) {
				t.Fatalf("identity %+v returned with error %v", id, err)
			}
			n := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %q wraps %d sentinels, want 1", err, n)
			}
			if len(token) >= 16 && strings.Contains(err.Error(), token) {
				t.Fatalf("error text quotes the token: %q", err)
			}
			return
		}
		checkGenuine(t, username, token, id)
	})
}

// checkGenuine re-checks an accepted token without the jwt library.
func checkGenuine(t *testing.T, username, token string, id Identity) {
	t.Helper()
	if len(token) > MaxTokenBytes {
		t.Fatalf("accepted a %d-byte token", len(token))
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("accepted a token of %d segments", len(parts))
	}
	enc := base64.RawURLEncoding.Strict()
	rawHeader, err := enc.DecodeString(parts[0])
	if err != nil {
		t.Fatalf("accepted an undecodable header: %v", err)
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(rawHeader, &header); err != nil || header.Alg != "HS256" {
		t.Fatalf("accepted header %q", rawHeader)
	}
	sig, err := enc.DecodeString(parts[2])
	if err != nil {
		t.Fatalf("accepted an undecodable signature: %v", err)
	}
	m := hmac.New(sha256.New, testSecret)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, m.Sum(nil)) {
		t.Fatal("accepted a token whose HMAC-SHA256 does not match the secret")
	}
	if id.UID != username || !acl.ValidUID(username) {
		t.Fatalf("identity uid %q for username %q", id.UID, username)
	}
	if id.Role != RoleUser && id.Role != RoleAdmin {
		t.Fatalf("accepted role %q", id.Role)
	}
	if utf8.RuneCountInString(id.Nickname) > MaxNicknameRunes || len(id.Avatar) > MaxAvatarBytes {
		t.Fatalf("accepted oversize profile %+v", id)
	}
	if !id.Expires.Add(DefaultLeeway).After(testNow) {
		t.Fatalf("accepted a token that expired at %v", id.Expires)
	}
}

// The committed valid_* seeds must still verify, or the fuzzer would start
// from deny paths only (for example after a change to testNow).
func TestFuzzVerifyValidSeeds(t *testing.T) {
	t.Parallel()
	tk := newTestTokens(t)
	for _, name := range []string{"valid_minimal", "valid_profile"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzVerify", name))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) != 3 || lines[0] != "go test fuzz v1" {
				t.Fatalf("seed file is not go test fuzz v1 with two strings: %q", b)
			}
			var args [2]string
			for i, l := range lines[1:] {
				v, ok := strings.CutPrefix(l, "string(")
				v, ok2 := strings.CutSuffix(v, ")")
				if !ok || !ok2 {
					t.Fatalf("line %q is not string(...)", l)
				}
				if args[i], err = strconv.Unquote(v); err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
			}
			id, err := tk.Verify(args[0], args[1])
			if err != nil {
				t.Fatalf("seed no longer verifies: %v", err)
			}
			checkGenuine(t, args[0], args[1], id)
		})
	}
}

package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/inboxmq/inboxmq/acl"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Limits on tokens and their claims.
const (
	// MinSecretBytes is the shortest HS256 secret NewTokens accepts: RFC 7518
	// asks for a key at least as long as the hash output.
	MinSecretBytes = 32
	// MaxTokenBytes caps a token before any parsing, so an oversize MQTT
	// password costs nothing to refuse.
	MaxTokenBytes = 4096
	// MaxNicknameRunes caps the nickname claim.
	MaxNicknameRunes = 64
	// MaxAvatarBytes caps the avatar claim.
	MaxAvatarBytes = 1024
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat unless
	// WithLeeway says otherwise.
	DefaultLeeway = 5 * time.Second
	// MaxLeeway is the largest leeway WithLeeway accepts: more would stretch
	// every token's lifetime for little gain.
	MaxLeeway = 30 * time.Second
)

// algorithm is the only signing algorithm accepted or produced.
const algorithm = "HS256"

// Reasons Verify rejects a token. Each error Verify returns wraps exactly one.
var (
	// ErrTokenMalformed: empty, too long, not three base64url segments, or
	// header or claims that are not the expected JSON.
	ErrTokenMalformed = errors.New("auth: malformed token")
	// ErrTokenAlgorithm: the header names no algorithm or one other than HS256.
	ErrTokenAlgorithm = errors.New("auth: token algorithm not accepted")
	// ErrTokenSignature: the signature does not match the secret.
	ErrTokenSignature = errors.New("auth: token signature invalid")
	// ErrTokenExpired: the exp claim has passed.
	ErrTokenExpired = errors.New("auth: token expired")
	// ErrTokenNotYetValid: the nbf or iat claim is in the future.
	ErrTokenNotYetValid = errors.New("auth: token not yet valid")
	// ErrTokenSubject: the username is not a valid uid, or the sub claim is
	// missing or differs from it.
	ErrTokenSubject = errors.New("auth: token subject does not match username")
	// ErrTokenClaims: a required claim is missing, or a claim has the wrong
	// type or a value that is not allowed.
	ErrTokenClaims = errors.New("auth: token claims invalid")
)

// errCritHeader marks a token whose header lists critical extensions. RFC 7515
// says a recipient must reject extensions it does not understand, and we
// understand none.
var errCritHeader = errors.New("crit header")

// Option configures Tokens.
type Option func(*tokenOptions)

type tokenOptions struct {
	leeway time.Duration
}

// WithLeeway sets the clock skew allowed when checking exp, nbf and iat.
// It must be between 0 and MaxLeeway; the default is DefaultLeeway.
func WithLeeway(d time.Duration) Option {
	return func(o *tokenOptions) { o.leeway = d }
}

// Tokens verifies and mints HS256 access tokens. Safe for concurrent use.
type Tokens struct {
	secret []byte
	key    any // secret, converted to an interface once rather than per Verify
	leeway time.Duration
	now    func() time.Time // time.Now; tests pin it
	parser *jwt.Parser
}

// NewTokens returns Tokens for secret, which must be at least MinSecretBytes
// long. The secret is copied.
func NewTokens(secret []byte, opts ...Option) (*Tokens, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("auth: token secret must be at least %d bytes, got %d", MinSecretBytes, len(secret))
	}
	o := tokenOptions{leeway: DefaultLeeway}
	for _, opt := range opts {
		opt(&o)
	}
	if o.leeway < 0 || o.leeway > MaxLeeway {
		return nil, fmt.Errorf("auth: token leeway must be between 0 and %s, got %s", MaxLeeway, o.leeway)
	}
	t := &Tokens{
		secret: append([]byte(nil), secret...),
		leeway: o.leeway,
		now:    time.Now,
	}
	t.key = t.secret
	t.parser = jwt.NewParser(
		// The algorithm list is what stops "none", HS384 under the same
		// secret and RS256/HS256 confusion; keyFunc checks again.
		jwt.WithValidMethods([]string{algorithm}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(o.leeway),
		// Strict base64 refuses non-zero padding bits, so one signature has
		// exactly one encoding.
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(func() time.Time { return t.now() }),
	)
	return t, nil
}

// keyFunc hands the secret to the jwt parser.
func (t *Tokens) keyFunc(tok *jwt.Token) (any, error) {
	if tok.Method.Alg() != algorithm {
		return nil, ErrTokenAlgorithm
	}
	if _, ok := tok.Header["crit"]; ok {
		return nil, errCritHeader
	}
	return t.key, nil
}

// verifyClaims is the token payload as Verify reads it. The profile claims
// stay raw so that a wrong JSON type is reported as ErrTokenClaims and an
// explicit null reads as absent.
type verifyClaims struct {
	jwt.RegisteredClaims
	Nickname json.RawMessage `json:"nickname"`
	Avatar   json.RawMessage `json:"avatar"`
	Role     json.RawMessage `json:"role"`
}

// mintClaims is the token payload as Mint writes it.
type mintClaims struct {
	jwt.RegisteredClaims
	Nickname string `json:"nickname,omitempty"`
	Avatar   string `json:"avatar,omitempty"`
	Role     string `json:"role,omitempty"`
}

// Verify checks token (the MQTT password or HTTP bearer token) for username
// and returns who it identifies.
//
// The token must be a compact JWS of at most MaxTokenBytes, signed with
// HS256 under the secret, with an exp claim in the future, nbf and iat (if
// present) not in the future, give or take the leeway, and a sub claim equal
// to username, which must be a valid uid. The optional claims nickname (at
// most MaxNicknameRunes), avatar (at most MaxAvatarBytes) and role ("user",
// the default, or "admin") fill in the Identity; any other role, including
// "service", is rejected.
//
// A failure wraps one of the ErrToken* sentinels; its text never contains the
// token or the secret.
func (t *Tokens) Verify(username, token string) (Identity, error) {
	if !acl.ValidUID(username) {
		return Identity{}, fmt.Errorf("%w: username is not a valid uid", ErrTokenSubject)
	}
	return t.verify(username, token)
}

// VerifyBearer checks a token presented without a username (an HTTP
// bearer token): the same rules as Verify, with the identity taken from
// the token's sub claim, which must be a valid uid.
func (t *Tokens) VerifyBearer(token string) (Identity, error) {
	return t.verify("", token)
}

// verify checks token; username "" accepts any valid uid as subject.
func (t *Tokens) verify(username, token string) (Identity, error) {
	if token == "" {
		return Identity{}, fmt.Errorf("%w: empty", ErrTokenMalformed)
	}
	if len(token) > MaxTokenBytes {
		return Identity{}, fmt.Errorf("%w: longer than %d bytes", ErrTokenMalformed, MaxTokenBytes)
	}
	var c verifyClaims
	tok, err := t.parser.ParseWithClaims(token, &c, t.keyFunc)
	if err != nil {
		return Identity{}, classify(tok, err)
	}
	if c.Subject == "" {
		return Identity{}, fmt.Errorf("%w: sub claim missing", ErrTokenSubject)
	}
	if username == "" && !acl.ValidUID(c.Subject) {
		return Identity{}, fmt.Errorf("%w: sub claim is not a valid uid", ErrTokenSubject)
	}
	if username != "" && c.Subject != username {
		return Identity{}, fmt.Errorf("%w: sub claim differs from username", ErrTokenSubject)
	}
	username = c.Subject
	if c.ExpiresAt == nil { // WithExpirationRequired already refuses this
		return Identity{}, fmt.Errorf("%w: exp claim missing", ErrTokenClaims)
	}
	id := Identity{UID: username, Role: RoleUser, Expires: c.ExpiresAt.Time}
	if id.Nickname, _, err = stringClaim("nickname", c.Nickname); err != nil {
		return Identity{}, err
	}
	if err := checkNickname(id.Nickname); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrTokenClaims, err)
	}
	if id.Avatar, _, err = stringClaim("avatar", c.Avatar); err != nil {
		return Identity{}, err
	}
	if err := checkAvatar(id.Avatar); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrTokenClaims, err)
	}
	role, present, err := stringClaim("role", c.Role)
	if err != nil {
		return Identity{}, err
	}
	// An explicit "" is refused rather than read as the default.
	if present {
		if err := checkTokenRole(role); err != nil {
			return Identity{}, fmt.Errorf("%w: %w", ErrTokenClaims, err)
		}
		id.Role = acl.Role(role)
	}
	return id, nil
}

// classify turns a jwt parse error into one of our sentinels with a fixed
// reason. The jwt library's own text is dropped: it can quote header values
// and JSON fragments chosen by whoever sent the token.
func classify(tok *jwt.Token, err error) error {
	switch {
	case errors.Is(err, errCritHeader):
		return fmt.Errorf("%w: crit header not supported", ErrTokenMalformed)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: not a compact JWS with JSON header and claims", ErrTokenMalformed)
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, ErrTokenAlgorithm):
		return fmt.Errorf("%w: alg missing or not %s", ErrTokenAlgorithm, algorithm)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// The parser reports a disallowed algorithm as a bad signature.
		if tok != nil && tok.Method != nil && tok.Method.Alg() != algorithm {
			return fmt.Errorf("%w: alg not %s", ErrTokenAlgorithm, algorithm)
		}
		return fmt.Errorf("%w: signature does not match", ErrTokenSignature)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fmt.Errorf("%w: exp claim missing", ErrTokenClaims)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: exp has passed", ErrTokenExpired)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fmt.Errorf("%w: nbf is in the future", ErrTokenNotYetValid)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fmt.Errorf("%w: iat is in the future", ErrTokenNotYetValid)
	default:
		return fmt.Errorf("%w: rejected", ErrTokenClaims)
	}
}

// stringClaim decodes an optional string claim. Absent and null are both
// reported as not present.
func stringClaim(name string, raw json.RawMessage) (value string, present bool, err error) {
	if raw == nil {
		return "", false, nil
	}
	var s *string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, fmt.Errorf("%w: %s claim is not a string", ErrTokenClaims, name)
	}
	if s == nil {
		return "", false, nil
	}
	return *s, true, nil
}

// checkNickname enforces the nickname limits. Control characters are refused
// because the nickname is shown to other users.
func checkNickname(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("nickname is not UTF-8")
	}
	if utf8.RuneCountInString(s) > MaxNicknameRunes {
		return fmt.Errorf("nickname longer than %d characters", MaxNicknameRunes)
	}
	if hasControl(s) {
		return errors.New("nickname contains control characters")
	}
	return nil
}

// checkAvatar enforces the avatar limits: an http(s) URL or a reference
// without a scheme (a path or key the app resolves). Other schemes
// (javascript:, data:, vbscript:) would run or embed content in the
// clients that show it.
func checkAvatar(s string) error {
	if len(s) > MaxAvatarBytes {
		return fmt.Errorf("avatar longer than %d bytes", MaxAvatarBytes)
	}
	if !utf8.ValidString(s) {
		return errors.New("avatar is not UTF-8")
	}
	if hasControl(s) {
		return errors.New("avatar contains control characters")
	}
	if scheme, _, ok := strings.Cut(s, ":"); ok && !strings.ContainsAny(scheme, "/?#") {
		if l := strings.ToLower(scheme); l != "http" && l != "https" {
			return fmt.Errorf("avatar scheme %q not allowed (http, https or none)", clipScheme(scheme))
		}
	}
	return nil
}

func clipScheme(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}

// CheckProfile applies the token claims' rules for nickname and avatar to
// a profile set another way (im/conn), so both paths accept the same.
func CheckProfile(nickname, avatar string) error {
	if err := checkNickname(nickname); err != nil {
		return err
	}
	return checkAvatar(avatar)
}

// checkTokenRole allows the roles a token may carry.
func checkTokenRole(role string) error {
	switch acl.Role(role) {
	case RoleUser, RoleAdmin:
		return nil
	case RoleService:
		return errors.New("role service is for static accounts only")
	default:
		return errors.New("role not allowed")
	}
}

// hasControl reports control characters and the bidirectional formatting
// characters (RLO, LRI, ...) that make a name display as another.
func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return true
		}
	}
	return false
}

// Claims is what Mint puts in a token.
type Claims struct {
	UID      string        // becomes sub; must be a valid uid
	Nickname string        // optional, at most MaxNicknameRunes, no control characters
	Avatar   string        // optional, at most MaxAvatarBytes, no control characters
	Role     acl.Role      // "" (meaning RoleUser), RoleUser or RoleAdmin
	TTL      time.Duration // lifetime from now; at least one second
}

// Mint makes an HS256 token for c that Verify accepts for username c.UID
// until the TTL runs out. It sets sub, iat and exp; nickname, avatar and role
// only when not empty.
func (t *Tokens) Mint(c Claims) (string, error) {
	if !acl.ValidUID(c.UID) {
		return "", errors.New("auth: mint: uid is not valid")
	}
	// exp has whole-second precision, so a shorter TTL could mint a token
	// that is already expired.
	if c.TTL < time.Second {
		return "", fmt.Errorf("auth: mint: ttl must be at least 1s, got %s", c.TTL)
	}
	if err := checkNickname(c.Nickname); err != nil {
		return "", fmt.Errorf("auth: mint: %w", err)
	}
	if err := checkAvatar(c.Avatar); err != nil {
		return "", fmt.Errorf("auth: mint: %w", err)
	}
	if c.Role != "" {
		if err := checkTokenRole(string(c.Role)); err != nil {
			return "", fmt.Errorf("auth: mint: %w", err)
		}
	}
	now := t.now()
	claims := mintClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.UID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(c.TTL)),
		},
		Nickname: c.Nickname,
		Avatar:   c.Avatar,
		Role:     string(c.Role),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.secret)
	if err != nil {
		return "", fmt.Errorf("auth: mint: %w", err)
	}
	// JSON escaping can grow an avatar up to six-fold; never hand out a token
	// that Verify would refuse.
	if len(s) > MaxTokenBytes {
		return "", fmt.Errorf("auth: mint: token would be %d bytes, over %d", len(s), MaxTokenBytes)
	}
	return s, nil
}

package auth

import "time"

// Roles an [Identity] can have. They match the acl package's role names; the
// caller converts at the boundary so that auth stays free of imports.
const (
	// RoleUser is an ordinary end user; the default role of a token.
	RoleUser = "user"
	// RoleAdmin is an operator. Tokens and static accounts may carry it.
	RoleAdmin = "admin"
	// RoleService is a back-end service. Only static accounts may carry it:
	// a token that claims it is rejected, so a leaked token signing secret
	// alone cannot mint service credentials.
	RoleService = "service"
)

// maxUIDLen is the longest uid or account name; it mirrors acl.ValidUID.
const maxUIDLen = 64

// Identity is who authenticated.
type Identity struct {
	UID      string    // uid (users) or account name (static accounts)
	Nickname string    // display name from the token; empty for static accounts
	Avatar   string    // avatar reference from the token; empty for static accounts
	Role     string    // RoleUser, RoleAdmin or RoleService
	Expires  time.Time // token expiry; zero for static accounts
}

// validUID reports whether s is 1..64 characters of [A-Za-z0-9_.-]. It is the
// same rule as acl.ValidUID, repeated here so that auth imports nothing from
// the broker; uids end up in topic names, hence the narrow alphabet.
func validUID(s string) bool {
	if len(s) == 0 || len(s) > maxUIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

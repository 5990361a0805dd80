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

// Identity is who authenticated.
type Identity struct {
	UID      string    // uid (users) or account name (static accounts)
	Nickname string    // display name from the token; empty for static accounts
	Avatar   string    // avatar reference from the token; empty for static accounts
	Role     string    // RoleUser, RoleAdmin or RoleService
	Expires  time.Time // token expiry; zero for static accounts
}

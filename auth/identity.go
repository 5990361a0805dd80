package auth

import (
	"time"

	"github.com/inboxmq/inboxmq/acl"
)

// Roles an [Identity] can have: acl's, so that what authenticates and
// what authorizes name a role the same way.
const (
	// RoleUser is an ordinary end user; the default role of a token.
	RoleUser = acl.RoleUser
	// RoleAdmin is an operator. Tokens and static accounts may carry it.
	RoleAdmin = acl.RoleAdmin
	// RoleService is a back-end service. Only static accounts may carry it:
	// a token that claims it is rejected, so a leaked token signing secret
	// alone cannot mint service credentials.
	RoleService = acl.RoleService
)

// Identity is who authenticated, over MQTT or HTTP alike.
type Identity struct {
	UID      string    // uid (users) or account name (static accounts)
	Nickname string    // display name from the token; empty for static accounts
	Avatar   string    // avatar reference from the token; empty for static accounts
	Role     acl.Role  // RoleUser, RoleAdmin or RoleService
	Expires  time.Time // token expiry; zero for static accounts
}

// Credentials are what logins are checked against, over MQTT and HTTP
// alike: the token verifier and the static accounts (either may be nil).
type Credentials struct {
	Tokens   *Tokens
	Accounts *Accounts
}

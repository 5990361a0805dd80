package acl

import (
	"errors"
	"fmt"
)

// Role of an authenticated account.
type Role string

// The roles an account can have; every authenticated role owns inbox/{Username}.
const (
	RoleUser      Role = "user"      // app user, identified by uid, owns inbox/{uid}
	RoleAdmin     Role = "admin"     // operator: may send notices, read $SYS
	RoleService   Role = "service"   // back-end service: may send notices
	RoleAnonymous Role = "anonymous" // no credentials (only when enabled)
)

// ErrInvalidRole is wrapped by ParseRole's errors.
var ErrInvalidRole = errors.New("acl: invalid role")

// Valid reports whether r is one of the four roles. A Subject with any other
// role, including the empty one, is denied everything.
func (r Role) Valid() bool {
	switch r {
	case RoleUser, RoleAdmin, RoleService, RoleAnonymous:
		return true
	}
	return false
}

// ParseRole parses the role of an account in the config file: "" means
// RoleUser. RoleAnonymous is not accepted: it is given by the broker to
// clients that send no credentials, never configured.
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case "", RoleUser:
		return RoleUser, nil
	case RoleAdmin, RoleService:
		return Role(s), nil
	}
	return "", fmt.Errorf("%w %q: want user, admin or service", ErrInvalidRole, s)
}

// MaxUIDLen is the longest valid uid or account name, in bytes.
const MaxUIDLen = 64

// ValidUID reports whether s is a valid uid / account name: 1 to 64 chars of
// [A-Za-z0-9_.-]. Such a name is always a single, wildcard-free topic level.
func ValidUID(s string) bool {
	if len(s) == 0 || len(s) > MaxUIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// Subject is who asks.
type Subject struct {
	Username string // uid or static account name; "" for anonymous
	ClientID string // the MQTT client id as the client sent it
	Role     Role
}

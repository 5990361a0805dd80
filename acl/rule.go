package acl

import (
	"errors"
	"fmt"
	"strings"
)

// Access is a set of permissions.
type Access uint8

// The permissions a Rule can grant, and Deny, which takes both away.
const (
	Read      Access = 1 << iota    // subscribe / receive
	Write                           // publish
	ReadWrite        = Read | Write // both
	// Deny refuses reading and writing what its pattern covers, whatever
	// other rules grant: "readwrite #" with "deny test/secret" opens every
	// topic but that one. A subscription to a wider filter ("test/#") is
	// granted, and the denied topic's messages are not delivered on it.
	Deny Access = 1 << 2
)

// String returns the config keyword for a: "read", "write" or "readwrite".
func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case ReadWrite:
		return "readwrite"
	case Deny:
		return "deny"
	}
	return fmt.Sprintf("Access(%d)", uint8(a))
}

func (a Access) valid() bool { return a == Read || a == Write || a == ReadWrite || a == Deny }

// Placeholders a rule pattern may hold, each only as a whole level.
const (
	PlaceholderUsername = "%u" // replaced by Subject.Username
	PlaceholderClientID = "%c" // replaced by Subject.ClientID
)

var (
	// ErrInvalidRule is wrapped by errors for a rule that cannot be parsed
	// or whose pattern is not a valid topic filter.
	ErrInvalidRule = errors.New("acl: invalid rule")
	// ErrReservedPattern is wrapped by errors for a rule whose pattern lies
	// in a reserved namespace (see Reserved).
	ErrReservedPattern = errors.New("acl: rule pattern is reserved")
)

// Rule is one operator rule from the config file, mosquitto-style:
// "read|write|readwrite|deny <pattern>". Pattern is an MQTT topic filter that may
// contain + and # and the placeholders %u (username) and %c (client id),
// each only as a whole level (e.g. "devices/%u/#"; "dev-%u" is rejected by
// ParseRule).
type Rule struct {
	Access  Access
	Pattern string
}

// String formats r as a config line that ParseRule turns back into r.
func (r Rule) String() string { return r.Access.String() + " " + r.Pattern }

// ParseRule parses one rule line: an access keyword (read, write,
// readwrite or deny, lower case), white space, then the pattern, which is the rest of
// the line without surrounding white space (MQTT allows spaces inside a
// topic). Comments and blank lines are the config loader's business.
// The returned rule is always accepted by NewPolicy: a reserved pattern is
// rejected here already, with ErrReservedPattern.
func ParseRule(line string) (Rule, error) {
	line = strings.TrimSpace(line)
	i := strings.IndexAny(line, " \t")
	if i < 0 {
		return Rule{}, fmt.Errorf("%w %q: want \"read|write|readwrite|deny <pattern>\"", ErrInvalidRule, line)
	}
	var r Rule
	switch kw := line[:i]; kw {
	case "read":
		r.Access = Read
	case "write":
		r.Access = Write
	case "readwrite":
		r.Access = ReadWrite
	case "deny":
		r.Access = Deny
	default:
		return Rule{}, fmt.Errorf("%w %q: access %q is not read, write, readwrite or deny", ErrInvalidRule, line, kw)
	}
	r.Pattern = strings.TrimSpace(line[i+1:])
	if err := r.validate(); err != nil {
		return Rule{}, err
	}
	return r, nil
}

// validate checks what NewPolicy relies on: a known access, a valid filter
// with whole-level placeholders, outside the reserved namespaces.
func (r Rule) validate() error {
	if !r.Access.valid() {
		return fmt.Errorf("%w: access %d", ErrInvalidRule, uint8(r.Access))
	}
	if !ValidFilter(r.Pattern) {
		return fmt.Errorf("%w: pattern %q is not a valid MQTT topic filter", ErrInvalidRule, r.Pattern)
	}
	for rest := r.Pattern; ; {
		level, tail, more := strings.Cut(rest, "/")
		if level != PlaceholderUsername && level != PlaceholderClientID &&
			(strings.Contains(level, PlaceholderUsername) || strings.Contains(level, PlaceholderClientID)) {
			return fmt.Errorf("%w: pattern %q: a placeholder must be a whole level, got %q", ErrInvalidRule, r.Pattern, level)
		}
		if !more {
			break
		}
		rest = tail
	}
	if Reserved(r.Pattern) {
		return fmt.Errorf("%w: %q (inbox, broadcast, im and $-topics are never opened by rules)", ErrReservedPattern, r.Pattern)
	}
	return nil
}

// uses reports whether pattern has a level equal to placeholder.
func uses(pattern, placeholder string) bool {
	for {
		level, tail, more := strings.Cut(pattern, "/")
		if level == placeholder {
			return true
		}
		if !more {
			return false
		}
		pattern = tail
	}
}

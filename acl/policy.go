package acl

import (
	"fmt"
	"strings"
)

// Policy decides every subscribe, receive and publish. It is immutable after
// NewPolicy and safe for concurrent use. The zero Policy, and a nil *Policy,
// apply the built-in decisions only, as if NewPolicy(nil, nil).
type Policy struct {
	rules     ruleSet // for every authenticated account
	anonymous ruleSet // for RoleAnonymous only
}

// compiledRule is a validated Rule with its placeholder use worked out once.
type compiledRule struct {
	access  Access
	pattern string
	user    bool // pattern has a %u level
	client  bool // pattern has a %c level
}

type ruleSet struct {
	list         []compiledRule
	user, client bool // some rule uses %u / %c
}

// NewPolicy returns a Policy with rules applying to every authenticated
// account and anonymous to RoleAnonymous only. It fails, wrapping
// ErrInvalidRule or ErrReservedPattern, if a rule has an unknown access or a
// pattern that is invalid or reserved. The slices are copied.
func NewPolicy(rules, anonymous []Rule) (*Policy, error) {
	p := &Policy{}
	var err error
	if p.rules, err = compile("rule", rules); err != nil {
		return nil, err
	}
	if p.anonymous, err = compile("anonymous rule", anonymous); err != nil {
		return nil, err
	}
	return p, nil
}

func compile(what string, rules []Rule) (ruleSet, error) {
	var set ruleSet
	for i, r := range rules {
		if err := r.validate(); err != nil {
			return ruleSet{}, fmt.Errorf("%s %d (%q): %w", what, i+1, r.String(), err)
		}
		c := compiledRule{
			access:  r.Access,
			pattern: r.Pattern,
			user:    uses(r.Pattern, PlaceholderUsername),
			client:  uses(r.Pattern, PlaceholderClientID),
		}
		set.user = set.user || c.user
		set.client = set.client || c.client
		set.list = append(set.list, c)
	}
	return set, nil
}

// Topics the built-in decisions are about.
const (
	inboxPrefix  = "inbox/"
	sharePrefix  = "$share/"
	sysPrefix    = "$SYS/"
	topicNotices = "im/systemadmin"
)

// CanRead decides a SUBSCRIBE filter (wildcards allowed, $share/{group}/{filter}
// allowed) and also a concrete topic at delivery time: mochi calls the same
// check for both. It does not allocate.
//
// Built in: "inbox/{uid}", exactly, for the authenticated owner; "broadcast",
// exactly, for any authenticated account; "$SYS/..." for RoleAdmin. No shared
// subscription gets a built-in grant. Everything else needs a rule, and a
// rule never grants a filter naming a reserved namespace ("inbox/+",
// "$share/g/inbox/x"). A rule may grant a filter starting with a wildcard
// ("#", "+/x"): like '$' topics in MQTT, the reserved namespaces are never
// routed to such filters (nothing on them is routed by mochi at all).
func (p *Policy) CanRead(s Subject, filter string) bool {
	if !s.Role.Valid() {
		return false
	}
	// The hot path: one call per inbox message per subscriber. Every other
	// filter under inbox/ is denied here, so no rule can ever reach one.
	if uid, ok := strings.CutPrefix(filter, inboxPrefix); ok {
		return s.Role != RoleAnonymous && uid == s.Username && ValidUID(uid)
	}
	if !ValidFilter(filter) {
		return false
	}
	if rest, ok := strings.CutPrefix(filter, sharePrefix); ok {
		// The filter is valid, so a group holding '+' or '#' is "+" or "#"
		// itself, and f, the rest after a '/', is valid unless empty.
		group, f, ok := strings.Cut(rest, "/")
		if !ok || group == "" || group == "+" || group == "#" || f == "" {
			return false
		}
		return p.granted(s, Read, f)
	}
	switch {
	case filter == "broadcast":
		return s.Role != RoleAnonymous
	case strings.HasPrefix(filter, sysPrefix):
		return s.Role == RoleAdmin
	}
	return p.granted(s, Read, filter)
}

// CanPublish decides a client PUBLISH to a concrete topic name, including a
// will message's topic; a name with + or # is always denied.
//
// Built in, for any authenticated account: "im", "im/sendmsg", "im/delmsg",
// "im/conn", "im/read", "im/block", "im/unblock", "im/typing" and "im/editmsg";
// for RoleAdmin and RoleService also
// "im/systemadmin". Everything else needs a rule, and rules never open
// inbox/, broadcast, im/ or $-topics.
func (p *Policy) CanPublish(s Subject, topic string) bool {
	if !s.Role.Valid() || !ValidTopic(topic) {
		return false
	}
	if s.Role != RoleAnonymous {
		switch topic {
		case "im", "im/sendmsg", "im/delmsg", "im/conn", "im/read", "im/block", "im/unblock", "im/typing", "im/editmsg":
			return true
		case topicNotices:
			return s.Role == RoleAdmin || s.Role == RoleService
		}
	}
	return p.granted(s, Write, topic)
}

// granted reports whether a rule for s grants access a to filter, which the
// caller has checked with ValidFilter.
func (p *Policy) granted(s Subject, a Access, filter string) bool {
	if p == nil || mayMatchReserved(filter) {
		return false
	}
	set := &p.rules
	if s.Role == RoleAnonymous {
		set = &p.anonymous
	}
	var v vars
	if set.user {
		v.user, v.userOK = s.Username, substitutable(s.Username)
	}
	if set.client {
		v.client, v.clientOK = s.ClientID, substitutable(s.ClientID)
	}
	// Deny wins: a deny rule covering the filter (or the topic, at
	// delivery and publish) refuses it, whatever grants it.
	for i := range set.list {
		if r := &set.list[i]; r.access == Deny && covers(r.pattern, filter, &v) {
			return false
		}
	}
	for i := range set.list {
		r := &set.list[i]
		if r.access&a != 0 && covers(r.pattern, filter, &v) {
			return true
		}
	}
	return false
}

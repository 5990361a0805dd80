package acl

import (
	"errors"
	"strings"
	"testing"
)

// FuzzCovers checks Covers against the reference matcher: when pattern
// covers filter, every concrete topic the filter matches is matched by the
// pattern; for a concrete filter, Covers is exactly the MQTT match.
func FuzzCovers(f *testing.F) {
	for _, s := range [][2]string{
		{"inbox/+", "inbox/alice/x"}, {"a/#", "a"}, {"#", "$SYS/x"}, {"+/x", "+/x"},
		{"a/+/#", "a/#"}, {"#", "#"}, {"a//b", "a/+/b"}, {"设备/+", "设备/a"},
	} {
		f.Add(s[0], s[1], uint64(1))
	}
	f.Fuzz(func(t *testing.T, pattern, filter string, seed uint64) {
		got := Covers(pattern, filter)
		if !ValidFilter(pattern) || !ValidFilter(filter) {
			if got {
				t.Fatalf("Covers(%q, %q) = true for an invalid filter", pattern, filter)
			}
			return
		}
		if !Covers(filter, filter) {
			t.Fatalf("Covers(%q, %q) = false: a filter covers itself", filter, filter)
		}
		if ValidTopic(filter) && got != refMatch(pattern, filter) {
			t.Fatalf("Covers(%q, %q) = %v, reference match says %v", pattern, filter, got, !got)
		}
		if !got {
			return
		}
		for i := range uint64(8) {
			topic := genTopic(filter, seed+i)
			if !ValidTopic(topic) {
				continue // filter near the length limit grew past it
			}
			if !refMatch(filter, topic) {
				t.Fatalf("generator: %q does not match %q", filter, topic)
			}
			if !refMatch(pattern, topic) {
				t.Fatalf("Covers(%q, %q) = true, but %q matches topic %q and the pattern does not",
					pattern, filter, filter, topic)
			}
		}
	})
}

// fuzzRoles maps a fuzzed byte to a role, invalid ones included.
var fuzzRoles = []Role{RoleUser, RoleAdmin, RoleService, RoleAnonymous, "", "root"}

// FuzzCanRead asks a very permissive policy about arbitrary subjects and
// filters, and checks that no rule ever reaches a reserved topic: any filter
// under inbox/ other than the subject's own exact inbox is denied, and a
// granted filter that is not a built-in grant matches no reserved topic.
func FuzzCanRead(f *testing.F) {
	for _, s := range []struct {
		user, client string
		role         uint8
		filter       string
	}{
		{"alice", "phone", 0, "inbox/alice"},
		{"10001", "web", 0, "$share/g/inbox/10001"},
		{"alice", "a/#", 0, "devices/a/#"},
		{"+", "+", 0, "+/+"},
		{"ops", "console", 1, "$SYS/#"},
		{"", "kiosk", 3, "broadcast"},
		{"inbox", "inbox", 0, "inbox/#"},
	} {
		f.Add(s.user, s.client, s.role, s.filter)
	}
	p := mustPolicy(f,
		[]string{"readwrite #", "readwrite %u/#", "readwrite %c/#", "read +/%u/#", "read devices/%c/%u", "write +"},
		[]string{"readwrite #", "read %c/#"})
	f.Fuzz(func(t *testing.T, user, client string, role uint8, filter string) {
		s := Subject{Username: user, ClientID: client, Role: fuzzRoles[int(role)%len(fuzzRoles)]}
		authed := s.Role.Valid() && s.Role != RoleAnonymous
		if p.CanPublish(s, filter) {
			builtin := authed && (filter == "im" || strings.HasPrefix(filter, "im/"))
			if !ValidTopic(filter) || (Reserved(filter) && !builtin) {
				t.Fatalf("CanPublish(%+v, %q) = true", s, filter)
			}
		}
		if !p.CanRead(s, filter) {
			return
		}
		if !s.Role.Valid() {
			t.Fatalf("CanRead(%+v, %q) = true for an invalid role", s, filter)
		}
		if strings.HasPrefix(filter, "inbox/") {
			if filter != "inbox/"+user || !authed || !ValidUID(user) {
				t.Fatalf("CanRead(%+v, %q) = true: not the subject's own inbox", s, filter)
			}
			return
		}
		if (filter == "broadcast" && authed) || (strings.HasPrefix(filter, "$SYS/") && s.Role == RoleAdmin) {
			return
		}
		// Granted by a rule: neither the filter nor anything it matches is reserved.
		inner := filter
		if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
			_, inner, _ = strings.Cut(rest, "/")
		}
		if Reserved(inner) {
			t.Fatalf("CanRead(%+v, %q) = true: reserved", s, filter)
		}
		if strings.HasPrefix(inner, "#") || strings.HasPrefix(inner, "+") {
			// A wildcard first level may be granted: the broker never
			// routes its reserved namespaces to any filter (like '$').
			return
		}
		for _, reserved := range []string{"inbox/alice", "inbox/" + user, "inbox/" + client, "broadcast", "im/sendmsg", "im"} {
			if ValidTopic(reserved) && refMatch(inner, reserved) {
				t.Fatalf("CanRead(%+v, %q) = true, but it matches %q", s, filter, reserved)
			}
		}
		for seed := range uint64(4) {
			if topic := genTopic(inner, seed); Reserved(topic) {
				t.Fatalf("CanRead(%+v, %q) = true, but it matches %q", s, filter, topic)
			}
		}
	})
}

// FuzzParseRule checks that ParseRule never panics, that what it accepts
// NewPolicy accepts too, and that Rule.String round-trips.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"read devices/%u/#", "write a/%c", "readwrite #", "read dev-%u", "read inbox/%u",
		"read $SYS/#", "", "read", "read  a b ", "readwrite a/#/b", "read\t设备/%u",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseRule(line)
		if err != nil {
			if !errors.Is(err, ErrInvalidRule) && !errors.Is(err, ErrReservedPattern) {
				t.Fatalf("ParseRule(%q): error %v wraps neither sentinel", line, err)
			}
			return
		}
		if !ValidFilter(r.Pattern) || Reserved(r.Pattern) {
			t.Fatalf("ParseRule(%q) accepted pattern %q", line, r.Pattern)
		}
		if _, err := NewPolicy([]Rule{r}, []Rule{r}); err != nil {
			t.Fatalf("ParseRule(%q) = %+v, but NewPolicy: %v", line, r, err)
		}
		if back, err := ParseRule(r.String()); err != nil || back != r {
			t.Fatalf("ParseRule(%q) = %+v, %v; want %+v", r.String(), back, err, r)
		}
	})
}

package acl

import (
	"strings"
	"sync"
	"testing"
)

var (
	alice   = Subject{Username: "alice", ClientID: "alice-phone", Role: RoleUser}
	numeric = Subject{Username: "10001", ClientID: "10001-web", Role: RoleUser}
	admin   = Subject{Username: "ops", ClientID: "ops-console", Role: RoleAdmin}
	service = Subject{Username: "notifier", ClientID: "notifier-1", Role: RoleService}
	anon    = Subject{ClientID: "kiosk", Role: RoleAnonymous}
)

// withClient, withUser and withRole return a copy of s with one field changed.
func withClient(s Subject, id string) Subject { s.ClientID = id; return s }
func withUser(s Subject, u string) Subject    { s.Username = u; return s }
func withRole(s Subject, r Role) Subject      { s.Role = r; return s }

type accessCase struct {
	name        string
	rules, anon []string
	s           Subject
	topic       string
	want        bool
}

func TestCanRead(t *testing.T) {
	long := strings.Repeat("x", MaxTopicLen-len("devices/alice/"))
	devices := []string{"read devices/%u/#"}
	all := []string{"read #"}
	tests := []accessCase{
		// Own inbox: exact filter, any authenticated role.
		{name: "own inbox", s: alice, topic: "inbox/alice", want: true},
		{name: "own inbox numeric uid", s: numeric, topic: "inbox/10001", want: true},
		{name: "own inbox admin", s: admin, topic: "inbox/ops", want: true},
		{name: "own inbox service", s: service, topic: "inbox/notifier", want: true},
		{name: "own inbox with rules", rules: all, s: alice, topic: "inbox/alice", want: true},
		{name: "other inbox", s: alice, topic: "inbox/bob", want: false},
		{name: "other inbox with read # rule", rules: all, s: alice, topic: "inbox/bob", want: false},
		{name: "other inbox admin", s: admin, topic: "inbox/alice", want: false},
		{name: "inbox anonymous with username", s: withUser(anon, "alice"), topic: "inbox/alice", want: false},
		{name: "inbox anonymous empty", s: anon, topic: "inbox/", want: false},
		{name: "inbox empty username", s: withUser(alice, ""), topic: "inbox/", want: false},
		{name: "inbox username with slash", s: withUser(alice, "a/b"), topic: "inbox/a/b", want: false},
		{name: "inbox username plus", s: withUser(alice, "+"), topic: "inbox/+", want: false},
		{name: "inbox username hash", s: withUser(alice, "#"), topic: "inbox/#", want: false},
		{name: "inbox unicode username", s: withUser(alice, "ålice"), topic: "inbox/ålice", want: false},
		{name: "inbox no role", s: withRole(alice, ""), topic: "inbox/alice", want: false},
		{name: "inbox unknown role", s: withRole(alice, "root"), topic: "inbox/alice", want: false},
		{name: "inbox below own", s: alice, topic: "inbox/alice/x", want: false},
		{name: "inbox own hash", s: alice, topic: "inbox/alice/#", want: false},
		{name: "inbox own trailing slash", s: alice, topic: "inbox/alice/", want: false},
		{name: "inbox case", s: alice, topic: "inbox/Alice", want: false},
		{name: "inbox very long", s: alice, topic: "inbox/" + strings.Repeat("a", MaxTopicLen), want: false},
		// Filters naming a reserved namespace are refused, whatever the rules.
		// A filter starting with a wildcard is granted where a rule covers
		// it: the reserved namespaces are never routed to any filter.
		{name: "attack inbox/+", rules: all, s: numeric, topic: "inbox/+", want: false},
		{name: "attack inbox/#", rules: all, s: numeric, topic: "inbox/#", want: false},
		{name: "# granted by a rule (never routed reserved topics)", rules: all, s: numeric, topic: "#", want: true},
		{name: "# granted by a rule, admin", rules: all, s: admin, topic: "#", want: true},
		{name: "+/+ granted by a rule", rules: all, s: numeric, topic: "+/+", want: true},
		{name: "+/10001 granted by a rule", rules: all, s: numeric, topic: "+/10001", want: true},
		{name: "+ granted by a rule", rules: all, s: numeric, topic: "+", want: true},
		{name: "+/# granted by its rule", rules: []string{"read +/#"}, s: numeric, topic: "+/#", want: true},
		{name: "deny: # without a rule", s: numeric, topic: "#", want: false},
		{name: "deny: # with a narrower rule", rules: []string{"read public/#"}, s: numeric, topic: "#", want: false},
		{name: "attack share own inbox", rules: all, s: numeric, topic: "$share/g/inbox/10001", want: false},
		{name: "share # granted by a rule", rules: all, s: numeric, topic: "$share/g/#", want: true},
		{name: "share +/10001 granted by a rule", rules: all, s: numeric, topic: "$share/g/+/10001", want: true},
		{name: "attack inbox alone", rules: all, s: numeric, topic: "inbox", want: false},
		{name: "attack inbox/", rules: all, s: numeric, topic: "inbox/", want: false},
		// Deny rules win over allow rules, for filters and delivered topics.
		{name: "deny: the denied topic", rules: []string{"readwrite #", "deny test/nosubscribe"}, s: alice, topic: "test/nosubscribe", want: false},
		{name: "deny: covered by a denied wildcard", rules: []string{"readwrite #", "deny test/secret/#"}, s: alice, topic: "test/secret/a", want: false},
		{name: "deny: a %u deny rule", rules: []string{"readwrite #", "deny private/%u"}, s: alice, topic: "private/alice", want: false},
		{name: "a wider filter stays granted", rules: []string{"readwrite #", "deny test/nosubscribe"}, s: alice, topic: "test/#", want: true},
		{name: "a sibling stays granted", rules: []string{"readwrite #", "deny test/nosubscribe"}, s: alice, topic: "test/other", want: true},
		{name: "another user's %u is not denied", rules: []string{"readwrite #", "deny private/%u"}, s: alice, topic: "private/bob", want: true},
		{name: "deny alone grants nothing", rules: []string{"deny test/x"}, s: alice, topic: "test/y", want: false},
		// Broadcast.
		{name: "broadcast user", s: alice, topic: "broadcast", want: true},
		{name: "broadcast admin", s: admin, topic: "broadcast", want: true},
		{name: "broadcast service", s: service, topic: "broadcast", want: true},
		{name: "broadcast anonymous", s: anon, topic: "broadcast", want: false},
		{name: "broadcast anonymous with read # rule", anon: all, s: anon, topic: "broadcast", want: false},
		{name: "broadcast below", rules: all, s: alice, topic: "broadcast/x", want: false},
		{name: "broadcast hash", rules: all, s: alice, topic: "broadcast/#", want: false},
		{name: "broadcast shared", rules: all, s: alice, topic: "$share/g/broadcast", want: false},
		{name: "broadcast no role", s: withRole(alice, ""), topic: "broadcast", want: false},
		// $SYS.
		{name: "sys admin hash", s: admin, topic: "$SYS/#", want: true},
		{name: "sys admin topic", s: admin, topic: "$SYS/broker/uptime", want: true},
		{name: "sys admin plus", s: admin, topic: "$SYS/+/clients", want: true},
		{name: "sys user", rules: all, s: alice, topic: "$SYS/#", want: false},
		{name: "sys service", s: service, topic: "$SYS/broker/uptime", want: false},
		{name: "sys anonymous", anon: all, s: anon, topic: "$SYS/#", want: false},
		{name: "sys bare", s: admin, topic: "$SYS", want: false},
		{name: "sys invalid filter", s: admin, topic: "$SYS/a#", want: false},
		{name: "sys shared", s: admin, topic: "$share/g/$SYS/#", want: false},
		{name: "sys lower case", s: admin, topic: "$sys/#", want: false},
		{name: "admin no wildcard over everything", s: admin, topic: "#", want: false},
		// Rules.
		{name: "no rule -> deny", s: alice, topic: "devices/alice/temp", want: false},
		{name: "no rule -> deny, admin", s: admin, topic: "devices/x", want: false},
		{name: "rule %u topic", rules: devices, s: alice, topic: "devices/alice/temp", want: true},
		{name: "rule %u filter", rules: devices, s: alice, topic: "devices/alice/#", want: true},
		{name: "rule %u parent", rules: devices, s: alice, topic: "devices/alice", want: true},
		{name: "rule %u plus below", rules: devices, s: alice, topic: "devices/alice/+/x", want: true},
		{name: "rule %u admin", rules: devices, s: admin, topic: "devices/ops/x", want: true},
		{name: "rule %u other user", rules: devices, s: alice, topic: "devices/bob/temp", want: false},
		{name: "rule %u wildcard user level", rules: devices, s: alice, topic: "devices/+/temp", want: false},
		{name: "rule %u wider", rules: devices, s: alice, topic: "devices/#", want: false},
		{name: "rule plus", rules: []string{"read devices/+/temp"}, s: alice, topic: "devices/+/temp", want: true},
		{name: "rule plus concrete", rules: []string{"read devices/+/temp"}, s: alice, topic: "devices/x/temp", want: true},
		{name: "rule plus one level (prefix bug)", rules: []string{"read devices/+"}, s: alice, topic: "devices/x/y", want: false},
		{name: "rule hash topic", rules: all, s: alice, topic: "devices/x", want: true},
		{name: "rule hash inner wildcard", rules: all, s: alice, topic: "a/+", want: true},
		{name: "rule hash leading slash", rules: all, s: alice, topic: "/inbox/x", want: true},
		{name: "rule hash im", rules: all, s: alice, topic: "im/sendmsg", want: false},
		{name: "rule hash im bare", rules: all, s: alice, topic: "im", want: false},
		{name: "rule hash dollar", rules: all, s: alice, topic: "$foo/x", want: false},
		{name: "rule first-level plus granted", rules: []string{"read +/status"}, s: alice, topic: "+/status", want: true},
		{name: "rule first-level plus concrete", rules: []string{"read +/status"}, s: alice, topic: "dev/status", want: true},
		{name: "write rule does not grant read", rules: []string{"write devices/%u/#"}, s: alice, topic: "devices/alice/x", want: false},
		{name: "readwrite rule grants read", rules: []string{"readwrite devices/%u/#"}, s: alice, topic: "devices/alice/x", want: true},
		{name: "second rule grants", rules: []string{"read a/#", "read b/#"}, s: alice, topic: "b/x", want: true},
		// Anonymous rules.
		{name: "anonymous rule", anon: []string{"read public/#"}, s: anon, topic: "public/news", want: true},
		{name: "anonymous no rule -> deny", s: anon, topic: "public/news", want: false},
		{name: "anonymous ignores normal rules", rules: []string{"read public/#"}, s: anon, topic: "public/news", want: false},
		{name: "user ignores anonymous rules", anon: []string{"read public/#"}, s: alice, topic: "public/news", want: false},
		{name: "anonymous %u needs a username", anon: []string{"read users/%u"}, s: anon, topic: "users/", want: false},
		{name: "anonymous %c", anon: []string{"read kiosks/%c"}, s: anon, topic: "kiosks/kiosk", want: true},
		// Placeholder injection: substitution must never widen access.
		{name: "inject client a/# filter", rules: []string{"readwrite devices/%c/#"}, s: withClient(alice, "a/#"), topic: "devices/a/#", want: false},
		{name: "inject client a/# topic", rules: []string{"readwrite devices/%c/#"}, s: withClient(alice, "a/#"), topic: "devices/a/x", want: false},
		{name: "inject client a/# deeper", rules: []string{"readwrite devices/%c/#"}, s: withClient(alice, "a/#"), topic: "devices/a/#/x", want: false},
		{name: "inject client plus", rules: []string{"read devices/%c"}, s: withClient(alice, "+"), topic: "devices/+", want: false},
		{name: "inject client plus concrete", rules: []string{"read devices/%c"}, s: withClient(alice, "+"), topic: "devices/x", want: false},
		{name: "inject client hash", rules: []string{"read devices/%c"}, s: withClient(alice, "#"), topic: "devices/#", want: false},
		{name: "inject client slash", rules: []string{"read devices/%c/#"}, s: withClient(alice, "a/b"), topic: "devices/a/b/x", want: false},
		{name: "inject empty client", rules: []string{"read c/%c"}, s: withClient(alice, ""), topic: "c/", want: false},
		{name: "inject username plus", rules: []string{"read u/%u"}, s: withUser(alice, "+"), topic: "u/+", want: false},
		{name: "inject client inbox", rules: []string{"read %c/#"}, s: withClient(alice, "inbox"), topic: "inbox/bob", want: false},
		{name: "inject client dollar", rules: []string{"read %c/#"}, s: withClient(alice, "$SYS"), topic: "$SYS/x", want: false},
		{name: "bad client does not block %u rule", rules: []string{"read c/%c", "read u/%u"}, s: withClient(alice, "a/#"), topic: "u/alice", want: true},
		{name: "client placeholder", rules: []string{"readwrite devices/%c/#"}, s: alice, topic: "devices/alice-phone/x", want: true},
		{name: "client placeholder other", rules: []string{"readwrite devices/%c/#"}, s: alice, topic: "devices/alice/x", want: false},
		{name: "first-level placeholder", rules: []string{"read %u/#"}, s: alice, topic: "alice/x", want: true},
		{name: "both placeholders", rules: []string{"read d/%u/%c"}, s: alice, topic: "d/alice/alice-phone", want: true},
		{name: "both placeholders swapped", rules: []string{"read d/%u/%c"}, s: alice, topic: "d/alice-phone/alice", want: false},
		{name: "placeholder literal filter", rules: devices, s: alice, topic: "devices/%u/x", want: false},
		// Shared subscriptions: the inner filter is decided by rules only.
		{name: "shared rule", rules: devices, s: alice, topic: "$share/g/devices/alice/x", want: true},
		{name: "shared rule hash", rules: devices, s: alice, topic: "$share/workers/devices/alice/#", want: true},
		{name: "shared no rule -> deny", s: alice, topic: "$share/g/devices/alice/x", want: false},
		{name: "shared other user", rules: devices, s: alice, topic: "$share/g/devices/bob/x", want: false},
		{name: "shared empty group", rules: devices, s: alice, topic: "$share//devices/alice/x", want: false},
		{name: "shared plus group", rules: devices, s: alice, topic: "$share/+/devices/alice/x", want: false},
		{name: "shared hash group", rules: all, s: alice, topic: "$share/#", want: false},
		{name: "shared no filter", rules: all, s: alice, topic: "$share/g", want: false},
		{name: "shared empty filter", rules: all, s: alice, topic: "$share/g/", want: false},
		{name: "shared first-level plus", rules: all, s: alice, topic: "$share/g/+/x", want: true},
		{name: "shared nested", rules: all, s: alice, topic: "$share/g/$share/h/x", want: false},
		{name: "shared upper case", rules: all, s: alice, topic: "$SHARE/g/a", want: false},
		// Unicode, odd and huge input.
		{name: "unicode rule", rules: []string{"read 设备/%u/#"}, s: alice, topic: "设备/alice/温度", want: true},
		{name: "unicode client", rules: []string{"read d/%c"}, s: withClient(alice, "日本"), topic: "d/日本", want: true},
		{name: "lookalike inbox is another topic", rules: all, s: alice, topic: "ｉｎｂｏｘ/bob", want: true},
		{name: "lookalike inbox no rule -> deny", s: alice, topic: "ｉｎｂｏｘ/bob", want: false},
		{name: "empty filter", rules: all, s: alice, topic: "", want: false},
		{name: "nul", rules: all, s: alice, topic: "a/\x00", want: false},
		{name: "bad utf8", rules: all, s: alice, topic: "a/\xff", want: false},
		{name: "invalid hash", rules: all, s: alice, topic: "a/#/b", want: false},
		{name: "max length", rules: devices, s: alice, topic: "devices/alice/" + long, want: true},
		{name: "too long", rules: devices, s: alice, topic: "devices/alice/" + long + "x", want: false},
		{name: "many levels", rules: devices, s: alice, topic: "devices/alice" + strings.Repeat("/", 60000), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPolicy(t, tt.rules, tt.anon)
			if got := p.CanRead(tt.s, tt.topic); got != tt.want {
				t.Errorf("CanRead(%+v, %.80q) = %v, want %v (rules %q, anonymous %q)",
					tt.s, tt.topic, got, tt.want, tt.rules, tt.anon)
			}
		})
	}
}

func TestCanPublish(t *testing.T) {
	all := []string{"readwrite #"}
	devices := []string{"write devices/%u/#"}
	tests := []accessCase{
		// Built-in im/ commands.
		{name: "sendmsg user", s: alice, topic: "im/sendmsg", want: true},
		{name: "delmsg user", s: alice, topic: "im/delmsg", want: true},
		{name: "conn user", s: alice, topic: "im/conn", want: true},
		{name: "read user", s: alice, topic: "im/read", want: true},
		{name: "typing user", s: alice, topic: "im/typing", want: true},
		{name: "editmsg user", s: alice, topic: "im/editmsg", want: true},
		{name: "typing anonymous", anon: all, s: anon, topic: "im/typing", want: false},
		{name: "editmsg anonymous", anon: all, s: anon, topic: "im/editmsg", want: false},
		{name: "block user", s: alice, topic: "im/block", want: true},
		{name: "unblock user", s: alice, topic: "im/unblock", want: true},
		{name: "block anonymous", anon: all, s: anon, topic: "im/block", want: false},
		{name: "unblock anonymous", anon: all, s: anon, topic: "im/unblock", want: false},
		{name: "legacy im user", s: alice, topic: "im", want: true},
		{name: "sendmsg admin", s: admin, topic: "im/sendmsg", want: true},
		{name: "sendmsg service", s: service, topic: "im/sendmsg", want: true},
		{name: "sendmsg anonymous", s: anon, topic: "im/sendmsg", want: false},
		{name: "legacy im anonymous", anon: all, s: anon, topic: "im", want: false},
		{name: "sendmsg no role", s: withRole(alice, ""), topic: "im/sendmsg", want: false},
		{name: "systemadmin admin", s: admin, topic: "im/systemadmin", want: true},
		{name: "systemadmin service", s: service, topic: "im/systemadmin", want: true},
		{name: "systemadmin user", rules: all, s: alice, topic: "im/systemadmin", want: false},
		{name: "systemadmin anonymous", s: anon, topic: "im/systemadmin", want: false},
		{name: "other im", rules: all, s: admin, topic: "im/other", want: false},
		{name: "im below command", rules: all, s: alice, topic: "im/sendmsg/x", want: false},
		{name: "im trailing slash", rules: all, s: alice, topic: "im/", want: false},
		{name: "deny: a denied topic", rules: []string{"readwrite #", "deny test/nosubscribe"}, s: alice, topic: "test/nosubscribe", want: false},
		{name: "next to a denied topic", rules: []string{"readwrite #", "deny test/nosubscribe"}, s: alice, topic: "test/ok", want: true},
		{name: "deny does not touch the built-in requests", rules: []string{"readwrite #", "deny #"}, s: alice, topic: "im/sendmsg", want: true},
		{name: "im upper case", s: alice, topic: "IM/sendmsg", want: false},
		{name: "im wildcard", s: admin, topic: "im/+", want: false},
		{name: "im hash", s: admin, topic: "im/#", want: false},
		// Never to the delivery namespaces.
		{name: "own inbox", rules: all, s: alice, topic: "inbox/alice", want: false},
		{name: "other inbox", rules: all, s: alice, topic: "inbox/bob", want: false},
		{name: "inbox admin", s: admin, topic: "inbox/alice", want: false},
		{name: "inbox service", s: service, topic: "inbox/alice", want: false},
		{name: "broadcast admin", rules: all, s: admin, topic: "broadcast", want: false},
		{name: "broadcast service", s: service, topic: "broadcast", want: false},
		{name: "sys admin", rules: all, s: admin, topic: "$SYS/broker/x", want: false},
		{name: "dollar", rules: all, s: alice, topic: "$foo", want: false},
		{name: "share", rules: all, s: alice, topic: "$share/g/a", want: false},
		// Rules.
		{name: "no rule -> deny", s: alice, topic: "devices/alice/temp", want: false},
		{name: "no rule -> deny, admin", s: admin, topic: "devices/x", want: false},
		{name: "rule %u", rules: devices, s: alice, topic: "devices/alice/temp", want: true},
		{name: "rule %u parent", rules: devices, s: alice, topic: "devices/alice", want: true},
		{name: "rule %u other user", rules: devices, s: alice, topic: "devices/bob/temp", want: false},
		{name: "read rule does not grant write", rules: []string{"read devices/%u/#"}, s: alice, topic: "devices/alice/temp", want: false},
		{name: "readwrite rule", rules: all, s: alice, topic: "devices/x", want: true},
		{name: "rule wildcard topic name", rules: all, s: alice, topic: "devices/#", want: false},
		{name: "rule plus topic name", rules: all, s: alice, topic: "devices/+", want: false},
		{name: "rule plus in level", rules: all, s: alice, topic: "devices/a+b", want: false},
		{name: "anonymous rule", anon: []string{"write public/%c"}, s: anon, topic: "public/kiosk", want: true},
		{name: "anonymous no rule -> deny", s: anon, topic: "public/kiosk", want: false},
		{name: "user ignores anonymous rules", anon: []string{"write public/#"}, s: alice, topic: "public/x", want: false},
		{name: "anonymous ignores normal rules", rules: []string{"write public/#"}, s: anon, topic: "public/x", want: false},
		// Placeholder injection.
		{name: "inject client slash", rules: []string{"write devices/%c/x"}, s: withClient(alice, "a/b"), topic: "devices/a/b/x", want: false},
		{name: "inject client hash", rules: []string{"write devices/%c/#"}, s: withClient(alice, "a/#"), topic: "devices/a/y", want: false},
		{name: "inject empty username", anon: []string{"write u/%u"}, s: anon, topic: "u/", want: false},
		// Odd and huge input.
		{name: "empty topic", rules: all, s: alice, topic: "", want: false},
		{name: "nul", rules: all, s: alice, topic: "a\x00", want: false},
		{name: "bad utf8", rules: all, s: alice, topic: "a/\xff", want: false},
		{name: "unicode", rules: []string{"write 设备/%u"}, s: alice, topic: "设备/alice", want: true},
		{name: "max length", rules: all, s: alice, topic: strings.Repeat("a", MaxTopicLen), want: true},
		{name: "too long", rules: all, s: alice, topic: strings.Repeat("a", MaxTopicLen+1), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPolicy(t, tt.rules, tt.anon)
			if got := p.CanPublish(tt.s, tt.topic); got != tt.want {
				t.Errorf("CanPublish(%+v, %.80q) = %v, want %v (rules %q, anonymous %q)",
					tt.s, tt.topic, got, tt.want, tt.rules, tt.anon)
			}
		})
	}
}

func TestZeroAndNilPolicy(t *testing.T) {
	for name, p := range map[string]*Policy{"nil": nil, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			if !p.CanRead(alice, "inbox/alice") || !p.CanRead(alice, "broadcast") || !p.CanPublish(alice, "im/sendmsg") {
				t.Error("built-in grant denied")
			}
			if p.CanRead(alice, "devices/alice") || p.CanRead(alice, "$share/g/a") || p.CanPublish(alice, "devices/alice") {
				t.Error("no rule -> deny, but granted")
			}
		})
	}
}

// CanRead runs once per delivered message per subscriber: it must not allocate.
func TestNoAllocs(t *testing.T) {
	p := mustPolicy(t, []string{"read a/#", "readwrite devices/%u/%c/#"}, nil)
	tests := []struct {
		name string
		f    func()
	}{
		{"CanRead own inbox", func() { p.CanRead(alice, "inbox/alice") }},
		{"CanRead other inbox", func() { p.CanRead(alice, "inbox/bob") }},
		{"CanRead broadcast", func() { p.CanRead(alice, "broadcast") }},
		{"CanRead rule", func() { p.CanRead(alice, "devices/alice/alice-phone/temp") }},
		{"CanRead shared rule", func() { p.CanRead(alice, "$share/g/devices/alice/alice-phone/#") }},
		{"CanRead no rule -> deny", func() { p.CanRead(alice, "other/x") }},
		{"CanPublish command", func() { p.CanPublish(alice, "im/sendmsg") }},
		{"CanPublish rule", func() { p.CanPublish(alice, "devices/alice/alice-phone/temp") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tt.f); n != 0 {
				t.Errorf("%v allocations per call, want 0", n)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	p := mustPolicy(t, []string{"readwrite devices/%u/#"}, []string{"read public/#"})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			s := withUser(alice, "u"+strings.Repeat("x", i))
			for range 1000 {
				if !p.CanRead(s, "inbox/"+s.Username) || !p.CanPublish(s, "devices/"+s.Username+"/t") ||
					p.CanRead(s, "inbox/alice") || !p.CanRead(anon, "public/x") {
					t.Error("wrong decision under concurrent use")
					return
				}
			}
		})
	}
	wg.Wait()
}

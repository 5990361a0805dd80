package acl

import (
	"strings"
	"testing"
)

func TestCovers(t *testing.T) {
	long := strings.Repeat("a/", 30000) + "b" // 60001 bytes, 30001 levels
	tests := []struct {
		name            string
		pattern, filter string
		want            bool
	}{
		// Literals.
		{"exact topic", "a/b", "a/b", true},
		{"different topic", "a/b", "a/c", false},
		{"case sensitive", "a/B", "a/b", false},
		{"pattern shorter", "a", "a/b", false},
		{"pattern longer", "a/b", "a", false},
		{"literal does not cover plus", "a/b", "a/+", false},
		{"literal does not cover hash", "a/b", "a/#", false},
		{"empty levels", "a//b", "a//b", true},
		{"empty level is a level", "a/+/b", "a//b", true},
		{"leading slash", "/a", "/a", true},
		{"leading slash differs", "/a", "a", false},
		{"trailing slash", "a/", "a", false},
		// '+'.
		{"plus covers literal", "a/+", "a/b", true},
		{"plus covers plus", "a/+", "a/+", true},
		{"plus does not cover hash", "a/+", "a/#", false},
		{"plus one level only (mochi prefix bug)", "inbox/+", "inbox/alice/x", false},
		{"plus one level only, filter", "inbox/+", "inbox/+/x", false},
		{"plus needs a level", "a/+", "a", false},
		{"plus covers empty level", "a/+", "a/", true},
		{"first plus not dollar", "+/x", "$SYS/x", false},
		{"first plus covers plus", "+/x", "+/x", true},
		{"inner plus covers dollar level", "a/+", "a/$x", true},
		// '#'.
		{"hash covers all", "#", "a/b/c", true},
		{"hash covers hash", "#", "#", true},
		{"hash covers plus", "#", "+", true},
		{"hash not dollar", "#", "$SYS/x", false},
		{"hash not dollar filter", "#", "$SYS/#", false},
		{"hash covers parent", "a/#", "a", true},
		{"hash covers below", "a/#", "a/b/c", true},
		{"hash covers hash below", "a/#", "a/b/#", true},
		{"hash covers hash same level", "a/#", "a/#", true},
		{"hash does not cover sibling", "a/#", "b/c", false},
		{"hash not covered by plus-hash", "a/+/#", "a/#", false},
		{"hash not covered by plus", "+", "#", false},
		{"plus-hash does not cover grandparent", "a/b/#", "a", false},
		{"inner hash covers dollar", "a/#", "a/$x/y", true},
		{"dollar literal pattern", "$SYS/#", "$SYS/broker/uptime", true},
		{"dollar literal pattern plus", "$SYS/+", "$SYS/#", false},
		// Placeholders are literals here.
		{"placeholder literal", "devices/%u", "devices/%u", true},
		{"placeholder is no wildcard", "devices/%u", "devices/alice", false},
		// Unicode and size.
		{"unicode", "设备/+/温度", "设备/alice/温度", true},
		{"unicode differs", "设备/+", "设备x/a", false},
		{"long topic covered", "a/#", long, true},
		{"long topic not covered", "a/+", long, false},
		{"too long", "#", strings.Repeat("a", MaxTopicLen+1), false},
		// Invalid input covers nothing.
		{"no rule -> deny (empty pattern)", "", "a", false},
		{"empty filter", "#", "", false},
		{"invalid filter hash inside", "#", "a/#/b", false},
		{"invalid filter plus in level", "#", "a+/b", false},
		{"invalid pattern", "a/b#", "a/b", false},
		{"nul", "#", "a\x00b", false},
		{"bad utf8", "#", "a/\xff", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Covers(tt.pattern, tt.filter); got != tt.want {
				t.Errorf("Covers(%q, %q) = %v, want %v", tt.pattern, tt.filter, got, tt.want)
			}
		})
	}
}

func TestReserved(t *testing.T) {
	tests := []struct {
		name  string
		topic string
		want  bool
	}{
		{"inbox", "inbox", true},
		{"inbox uid", "inbox/alice", true},
		{"inbox wildcard", "inbox/#", true},
		{"broadcast", "broadcast", true},
		{"broadcast below", "broadcast/x", true},
		{"im", "im", true},
		{"im command", "im/sendmsg", true},
		{"sys", "$SYS/broker", true},
		{"share", "$share/g/a", true},
		{"any dollar", "$x", true},
		{"lookalike prefix", "inboxes/alice", false},
		{"upper case", "Inbox/alice", false},
		{"second level", "a/inbox/alice", false},
		{"leading slash", "/inbox/alice", false},
		{"wildcard is not itself reserved", "#", false},
		{"plus is not itself reserved", "+/x", false},
		{"devices", "devices/a", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Reserved(tt.topic); got != tt.want {
				t.Errorf("Reserved(%q) = %v, want %v", tt.topic, got, tt.want)
			}
		})
	}
}

func TestValidFilterAndTopic(t *testing.T) {
	tests := []struct {
		name        string
		s           string
		filter, top bool
	}{
		{"simple", "a/b", true, true},
		{"single", "a", true, true},
		{"slash only", "/", true, true},
		{"empty levels", "a//b", true, true},
		{"plus", "a/+/b", true, false},
		{"hash", "a/#", true, false},
		{"hash alone", "#", true, false},
		{"plus alone", "+", true, false},
		{"hash not last", "a/#/b", false, false},
		{"hash in level", "a/b#", false, false},
		{"plus in level", "a/b+", false, false},
		{"plus prefix", "+b", false, false},
		{"double hash", "##", false, false},
		{"empty", "", false, false},
		{"nul", "a\x00", false, false},
		{"bad utf8", "\xc3", false, false},
		{"unicode", "日本/é", true, true},
		{"max length", strings.Repeat("a", MaxTopicLen), true, true},
		{"too long", strings.Repeat("a", MaxTopicLen+1), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidFilter(tt.s); got != tt.filter {
				t.Errorf("ValidFilter(%q) = %v, want %v", tt.s, got, tt.filter)
			}
			if got := ValidTopic(tt.s); got != tt.top {
				t.Errorf("ValidTopic(%q) = %v, want %v", tt.s, got, tt.top)
			}
		})
	}
}

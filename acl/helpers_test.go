package acl

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// refMatch is a deliberately naive MQTT matcher, straight from the spec, to
// check Covers against: does filter match the concrete topic?
func refMatch(filter, topic string) bool {
	fl := strings.Split(filter, "/")
	tl := strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (fl[0] == "+" || fl[0] == "#") {
		return false
	}
	for i, f := range fl {
		if f == "#" {
			return true // this level and below, or the parent level when i == len(tl)
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

// levelPool holds the levels genTopic puts in place of wildcards: the
// reserved namespaces are there so that a filter able to reach one does.
var levelPool = []string{"", "a", "b", "x", "alice", "inbox", "broadcast", "im", "$SYS", "$x", "%u", "日本", "é"}

// genTopic returns a concrete topic matched by filter (a valid filter),
// replacing each '+' by one level and '#' by zero or more, chosen from seed.
func genTopic(filter string, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	level := func(first bool) string {
		for {
			l := levelPool[r.IntN(len(levelPool))]
			if r.IntN(4) == 0 {
				l += string(rune('a' + r.IntN(26)))
			}
			// A wildcard first level never matches a '$' topic.
			if !(first && strings.HasPrefix(l, "$")) {
				return l
			}
		}
	}
	// A topic name may not be empty: draw again the rare times it would be.
	for {
		if topic := genOnce(r, level, filter); topic != "" {
			return topic
		}
	}
}

func genOnce(r *rand.Rand, level func(first bool) string, filter string) string {
	var out []string
	for i, f := range strings.Split(filter, "/") {
		switch f {
		case "+":
			out = append(out, level(i == 0))
		case "#":
			n := r.IntN(4)
			if i == 0 && n == 0 {
				n = 1 // a topic has at least one level
			}
			for j := 0; j < n; j++ {
				out = append(out, level(i+j == 0))
			}
		default:
			out = append(out, f)
		}
	}
	return strings.Join(out, "/")
}

func mustPolicy(t testing.TB, rules, anonymous []string) *Policy {
	t.Helper()
	parse := func(lines []string) []Rule {
		var rs []Rule
		for _, l := range lines {
			r, err := ParseRule(l)
			if err != nil {
				t.Fatalf("ParseRule(%q): %v", l, err)
			}
			rs = append(rs, r)
		}
		return rs
	}
	p, err := NewPolicy(parse(rules), parse(anonymous))
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	return p
}

func TestRefMatch(t *testing.T) {
	tests := []struct {
		name          string
		filter, topic string
		want          bool
	}{
		{"exact", "a/b", "a/b", true},
		{"plus", "a/+", "a/b", true},
		{"plus not two levels", "a/+", "a/b/c", false},
		{"hash parent", "a/#", "a", true},
		{"hash below", "a/#", "a/b/c", true},
		{"hash all", "#", "a", true},
		{"dollar not by hash", "#", "$SYS/x", false},
		{"dollar not by plus", "+/x", "$SYS/x", false},
		{"dollar literal", "$SYS/#", "$SYS/x", true},
		{"shorter topic", "a/b", "a", false},
		{"no match", "a", "b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := refMatch(tt.filter, tt.topic); got != tt.want {
				t.Errorf("refMatch(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
			}
		})
	}
}

func TestGenTopicMatches(t *testing.T) {
	for _, f := range []string{"#", "+", "a/#", "+/+/#", "a/+/b", "/#", "+//+", "$SYS/#"} {
		for seed := range uint64(200) {
			topic := genTopic(f, seed)
			if !ValidTopic(topic) || !refMatch(f, topic) {
				t.Fatalf("genTopic(%q, %d) = %q: not a topic matched by the filter", f, seed, topic)
			}
		}
	}
}

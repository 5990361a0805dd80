package acl

import (
	"strings"
	"unicode/utf8"
)

// MaxTopicLen is the longest topic name or filter, in bytes: the MQTT
// string length limit.
const MaxTopicLen = 65535

// ValidFilter reports whether s is a valid MQTT topic filter: 1 to
// MaxTopicLen bytes of UTF-8 without U+0000, where '+' is only ever a whole
// level and '#' only the whole last level. Empty levels ("a//b", "/a") are
// valid, as in MQTT. Placeholders are ordinary characters here.
func ValidFilter(s string) bool {
	if len(s) == 0 || len(s) > MaxTopicLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 0:
			return false
		case '+':
			if (i > 0 && s[i-1] != '/') || (i+1 < len(s) && s[i+1] != '/') {
				return false
			}
		case '#':
			if (i > 0 && s[i-1] != '/') || i != len(s)-1 {
				return false
			}
		}
	}
	return utf8.ValidString(s)
}

// ValidTopic reports whether s is a valid MQTT topic name, the concrete
// topic of a PUBLISH: a valid filter without '+' or '#'.
func ValidTopic(s string) bool {
	return ValidFilter(s) && strings.IndexByte(s, '+') < 0 && strings.IndexByte(s, '#') < 0
}

// Reserved reports whether topicOrFilter lies in a namespace that rules never
// open: "inbox" and "inbox/...", "broadcast" and "broadcast/...", "im" and
// "im/...", and every topic starting with '$' ("$SYS/...", "$share/...").
// It looks at the literal first level only: "#" or "+/x" are not reserved
// themselves, though they can match reserved topics (see Policy).
func Reserved(topicOrFilter string) bool {
	if strings.HasPrefix(topicOrFilter, "$") {
		return true
	}
	first, _, _ := strings.Cut(topicOrFilter, "/")
	switch first {
	case "inbox", "broadcast", "im":
		return true
	}
	return false
}

// mayMatchReserved reports whether a rule must never grant filter: one
// that names a reserved namespace. A filter starting with a wildcard ("#",
// "+/x") may be granted: like '$' topics for such filters in MQTT
// (MQTT-4.7.2-1), the reserved namespaces are never routed by mochi (the
// hooks write inbox, broadcast and request traffic to connections
// themselves), so such a filter reaches opened topics only.
func mayMatchReserved(filter string) bool { return Reserved(filter) }

// Covers reports whether every topic matched by filter is also matched by
// pattern (both MQTT filters, no placeholders). A concrete topic is a filter
// that matches only itself, so Covers(filter, topic) is also the plain MQTT
// match. Invalid filters cover and are covered by nothing.
//
// Levels are compared one by one, unlike mochi's prefix match:
// Covers("inbox/+", "inbox/alice/x") is false. A filter level '+' is covered
// only by pattern '+' or '#', filter '#' only by pattern '#', and a '$' first
// level is never covered by a wildcard first level.
func Covers(pattern, filter string) bool {
	return ValidFilter(pattern) && ValidFilter(filter) && covers(pattern, filter, nil)
}

// vars holds the values of the placeholders for one Subject; nil means the
// pattern has no placeholders. A placeholder whose value is not usable makes
// any pattern using it cover nothing.
type vars struct {
	user, client     string
	userOK, clientOK bool
}

// covers is Covers on valid filters, substituting placeholders from v when v
// is not nil. It does not allocate: this is CanRead's per-delivery path.
func covers(pattern, filter string, v *vars) bool {
	for first := true; ; first = false {
		p, prest, pmore := strings.Cut(pattern, "/")
		f, frest, fmore := strings.Cut(filter, "/")
		switch p {
		case "#":
			// '#' covers this level and everything below; the filter's
			// own '#' or '+' included.
			return !first || !strings.HasPrefix(f, "$")
		case "+":
			if f == "#" || (first && strings.HasPrefix(f, "$")) {
				return false
			}
		default:
			if v != nil {
				switch p {
				case PlaceholderUsername:
					if !v.userOK {
						return false
					}
					p = v.user
				case PlaceholderClientID:
					if !v.clientOK {
						return false
					}
					p = v.client
				}
			}
			// A literal covers only the same literal, never '+' or '#'.
			if p != f {
				return false
			}
		}
		if !fmore {
			// "a/#" also matches "a" (the parent level).
			return !pmore || prest == "#"
		}
		if !pmore {
			return false
		}
		pattern, filter = prest, frest
	}
}

// substitutable reports whether s can replace a placeholder without widening
// access: it must be exactly one literal level.
func substitutable(s string) bool {
	return s != "" && strings.IndexAny(s, "/+#") < 0
}

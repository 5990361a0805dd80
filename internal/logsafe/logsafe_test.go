package logsafe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"short", "inbox/10021", "inbox/10021"},
		{"exactly the limit", strings.Repeat("a", MaxString), strings.Repeat("a", MaxString)},
		{"long", strings.Repeat("a", 65000), strings.Repeat("a", MaxString) + "…(65000 bytes)"},
		{"rune boundary", strings.Repeat("a", MaxString-1) + "你好", strings.Repeat("a", MaxString-1) + "…(69 bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Clip(tc.in)
			if got != tc.want || !utf8.ValidString(got) {
				t.Fatalf("Clip = %q, want %q", got, tc.want)
			}
		})
	}
}

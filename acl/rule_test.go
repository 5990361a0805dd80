package acl

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRule(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    Rule
		wantErr error // nil: no error
	}{
		{"read", "read devices/%u/#", Rule{Read, "devices/%u/#"}, nil},
		{"write", "write telemetry/%c", Rule{Write, "telemetry/%c"}, nil},
		{"readwrite", "readwrite rooms/+/chat", Rule{ReadWrite, "rooms/+/chat"}, nil},
		{"hash", "read #", Rule{Read, "#"}, nil},
		{"first level plus", "read +/status", Rule{Read, "+/status"}, nil},
		{"first level placeholder", "readwrite %u/#", Rule{ReadWrite, "%u/#"}, nil},
		{"both placeholders", "read a/%u/%c", Rule{Read, "a/%u/%c"}, nil},
		{"tabs and spaces", " \tread\t  a/b  \t", Rule{Read, "a/b"}, nil},
		{"space inside topic", "read a b/c", Rule{Read, "a b/c"}, nil},
		{"unicode", "read 设备/%u/温度", Rule{Read, "设备/%u/温度"}, nil},
		{"other percent", "read stats/100%", Rule{Read, "stats/100%"}, nil},
		{"long pattern", "read " + strings.Repeat("a/", 1000) + "#", Rule{Read, strings.Repeat("a/", 1000) + "#"}, nil},
		{"no rule -> deny (empty line)", "", Rule{}, ErrInvalidRule},
		{"blank", "   ", Rule{}, ErrInvalidRule},
		{"keyword only", "read", Rule{}, ErrInvalidRule},
		{"keyword and spaces", "read   ", Rule{}, ErrInvalidRule},
		{"unknown access", "allow a/b", Rule{}, ErrInvalidRule},
		{"deny", "deny a/b", Rule{Deny, "a/b"}, nil},
		{"upper case access", "READ a/b", Rule{}, ErrInvalidRule},
		{"mosquitto topic form", "topic read a/b", Rule{}, ErrInvalidRule},
		{"comment", "# read a/b", Rule{}, ErrInvalidRule},
		{"placeholder inside level", "read dev-%u", Rule{}, ErrInvalidRule},
		{"placeholder suffix", "read devices/%ux", Rule{}, ErrInvalidRule},
		{"client placeholder inside level", "read devices/x%c/#", Rule{}, ErrInvalidRule},
		{"double percent", "read a/%%u", Rule{}, ErrInvalidRule},
		{"hash not last", "read a/#/b", Rule{}, ErrInvalidRule},
		{"plus in level", "read a+/b", Rule{}, ErrInvalidRule},
		{"nul", "read a\x00b", Rule{}, ErrInvalidRule},
		{"bad utf8", "read a/\xff", Rule{}, ErrInvalidRule},
		{"too long", "read " + strings.Repeat("a", MaxTopicLen+1), Rule{}, ErrInvalidRule},
		{"inbox", "read inbox/%u", Rule{}, ErrReservedPattern},
		{"inbox all", "readwrite inbox/#", Rule{}, ErrReservedPattern},
		{"inbox bare", "read inbox", Rule{}, ErrReservedPattern},
		{"broadcast", "write broadcast", Rule{}, ErrReservedPattern},
		{"im", "write im/custom", Rule{}, ErrReservedPattern},
		{"sys", "read $SYS/#", Rule{}, ErrReservedPattern},
		{"share", "read $share/g/a", Rule{}, ErrReservedPattern},
		{"dollar", "read $foo", Rule{}, ErrReservedPattern},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRule(tt.line)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ParseRule(%q): %v", tt.line, err)
				}
			} else if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseRule(%q) error = %v, want %v", tt.line, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseRule(%q) = %+v, want %+v", tt.line, got, tt.want)
			}
		})
	}
}

func TestRuleString(t *testing.T) {
	for _, r := range []Rule{{Read, "a/#"}, {Write, "%u/x"}, {ReadWrite, "a b/c"}} {
		got, err := ParseRule(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRule(%q) = %+v, %v; want %+v", r.String(), got, err, r)
		}
	}
	if got := Access(0).String(); got != "Access(0)" {
		t.Errorf("Access(0).String() = %q", got)
	}
}

func TestNewPolicy(t *testing.T) {
	tests := []struct {
		name            string
		rules, anon     []Rule
		wantErr         error
		wantErrContains string
	}{
		{"no rules", nil, nil, nil, ""},
		{"valid", []Rule{{Read, "devices/%u/#"}}, []Rule{{Read, "public/#"}}, nil, ""},
		{"reserved rule", []Rule{{Read, "a"}, {Read, "inbox/#"}}, nil, ErrReservedPattern, "rule 2"},
		{"reserved anonymous rule", nil, []Rule{{Read, "broadcast"}}, ErrReservedPattern, "anonymous rule 1"},
		{"sys rule", []Rule{{Read, "$SYS/#"}}, nil, ErrReservedPattern, ""},
		{"invalid pattern", []Rule{{Read, "a/#/b"}}, nil, ErrInvalidRule, ""},
		{"empty pattern", []Rule{{Read, ""}}, nil, ErrInvalidRule, ""},
		{"placeholder inside level", []Rule{{Read, "dev-%u"}}, nil, ErrInvalidRule, ""},
		{"zero access", []Rule{{0, "a"}}, nil, ErrInvalidRule, ""},
		{"unknown access bit", []Rule{{8, "a"}}, nil, ErrInvalidRule, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPolicy(tt.rules, tt.anon)
			if tt.wantErr == nil {
				if err != nil || p == nil {
					t.Fatalf("NewPolicy: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || p != nil {
				t.Fatalf("NewPolicy = %v, %v; want error %v", p, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErrContains) {
				t.Errorf("error %q does not contain %q", err, tt.wantErrContains)
			}
		})
	}
}

func TestNewPolicyCopiesRules(t *testing.T) {
	rules := []Rule{{Read, "devices/#"}}
	p, err := NewPolicy(rules, nil)
	if err != nil {
		t.Fatal(err)
	}
	rules[0] = Rule{Read, "#"}
	s := Subject{Username: "alice", ClientID: "c", Role: RoleUser}
	if p.CanRead(s, "other/x") {
		t.Error("changing the caller's slice changed the policy")
	}
}

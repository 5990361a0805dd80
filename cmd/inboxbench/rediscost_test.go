package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// TestQuickRedisCost runs the rediscost scenario small (20 users, 150
// messages) against the real inboxmq binary and redis-server: every
// message arrives once and in order, the per-message figures are there,
// the nodes' request count agrees with what Redis read, and a direct
// message stays within the command and request budget docs/performance.md
// gives ("Redis cost per message"): counts, not times.
func TestQuickRedisCost(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binary and redis-server for about 30 s")
	}
	o := QuickOptions()
	o.Brokers = []string{Inboxmq}
	o.Scenarios = []string{"rediscost"}
	o.Users, o.Senders, o.Messages = 20, 4, 150
	var out bytes.Buffer
	results, err := Run(o, &out, testLog{t})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || len(results[0].Runs) != 2 {
		t.Fatalf("results %v, want one rediscost result with two runs", results)
	}
	for _, sub := range results[0].Runs {
		for _, key := range []string{"lost", "out_of_order", "duplicates", "other", "publish_errors"} {
			if v, _ := sub.Get(key); v != 0 {
				t.Errorf("%s: %s = %v, want 0 (notes: %v)", sub.Scenario, key, v, sub.Notes)
			}
		}
		get := func(key string) float64 {
			v, ok := sub.Get(key)
			if !ok {
				t.Errorf("%s: no %s", sub.Scenario, key)
			}
			return v
		}
		cmds, reqs, reads := get("redis_cmds_per_msg"), get("redis_requests_per_msg"), get("redis_reads_per_msg")
		// Budgets for a run this small, where little is batched (at load
		// acks and wakes cost far less): a message's script, the block
		// list check, about one ack write and one wake; a second node
		// adds its read of the log. Before the round-four changes a run
		// like this cost over 40 commands and 4.3 (one node) and 5.3 (two
		// nodes) requests per message.
		maxCmds, maxReqs := 20.0, 3.5
		if sub.Scenario == "redis-2" {
			maxCmds, maxReqs = 22, 5
		}
		if cmds <= 0 || cmds > maxCmds {
			t.Errorf("%s: %.1f Redis commands per message, want (0, %.0f]", sub.Scenario, cmds, maxCmds)
		}
		if reqs <= 0 || reqs > maxReqs {
			t.Errorf("%s: %.2f requests per message, want (0, %.1f]", sub.Scenario, reqs, maxReqs)
		}
		if reads < reqs*0.8 || reads > reqs*1.2+0.2 {
			t.Errorf("%s: Redis read %.2f requests per message, the nodes sent %.2f", sub.Scenario, reads, reqs)
		}
		submit, ok := sub.Get("from_script submit")
		if !ok || submit < 5 {
			t.Errorf("%s: commands from the submit script %v (reported %v), want its share attributed", sub.Scenario, submit, ok)
		}
	}
}

func TestMonitorArgs(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		bad      bool
	}{
		{"plain", `"zadd" "k" "1" "m"`, []string{"zadd", "k", "1", "m"}, false},
		{"escapes", `"set" "a\"b" "c\\d" "\n\r\t\a\b"`, []string{"set", `a"b`, `c\d`, "\n\r\t\a\b"}, false},
		{"hex", `"x" "\x00\xff\x7f"`, []string{"x", "\x00\xff\x7f"}, false},
		{"empty argument", `"get" ""`, []string{"get", ""}, false},
		{"unquoted", `get k`, nil, true},
		{"unterminated", `"get" "k`, nil, true},
		{"short hex", `"x" "\x0`, nil, true},
		{"bad hex", `"x" "\xzz"`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := monitorArgs(tt.in)
			if (err != nil) != tt.bad || !slices.Equal(got, tt.want) {
				t.Errorf("monitorArgs(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.bad)
			}
		})
	}
}

func FuzzMonitorArgs(f *testing.F) {
	f.Add(`"zadd" "k" "1" "m"`)
	f.Add(`"x" "\x00\"\\"`)
	f.Add(`"a`)
	f.Fuzz(func(t *testing.T, s string) {
		args, err := monitorArgs(s)
		if err == nil && strings.TrimSpace(s) != "" && len(args) == 0 {
			t.Errorf("monitorArgs(%q) found no argument and no error", s)
		}
	})
}

// The feed is attributed to its origins: a script by the name in its
// source, with the commands Lua ran under it, others by command and key
// shape; counting starts over at the mark, and the harness's own polling
// is left out.
func TestMonitorAttribution(t *testing.T) {
	m := &monitor{prefix: "p:", marked: make(chan struct{}), bySha: map[string]*origin{}, plain: map[string]*origin{},
		names: map[string]string{}}
	lines := []string{
		`+1.0 [0 127.0.0.1:1] "evalsha" "abc" "0"`, // before the mark: not counted
		`+1.1 [0 127.0.0.1:2] "echo" "` + monitorMark + `"`,
		`+1.2 [0 127.0.0.1:1] "eval" "-- inboxmq submit\nreturn 1" "1" "p:im:{7}:h"`,
		`+1.3 [0 lua] "ZADD" "p:im:{7}:m" "1" "x"`,
		`+1.4 [0 lua] "ZADD" "p:im:{7}:t:bob" "1" "1"`,
		`+1.5 [0 127.0.0.1:1] "zadd" "p:{$global}:cur" "GT" "3" "1:7d"`,
		`+1.6 [0 127.0.0.1:3] "zcard" "p:{$global}:push"`,
		`+1.7 [0 127.0.0.1:1] "publish" "p:{signals}" "{}"`,
	}
	for _, l := range lines {
		if err := m.add(l); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string][2]float64{}
	for name, o := range m.plain {
		got[name] = [2]float64{o.calls, o.commands}
	}
	for sha, o := range m.bySha {
		got[m.names[sha]] = [2]float64{o.calls, o.commands}
	}
	want := map[string][2]float64{
		"script submit":      {1, 3},
		"ZADD {$global}:cur": {1, 1},
		"PUBLISH {signals}":  {1, 1},
	}
	if len(got) != len(want) {
		t.Fatalf("origins %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if err := m.add("garbage"); err == nil {
		t.Error("a line that is not a feed line was accepted")
	}
}

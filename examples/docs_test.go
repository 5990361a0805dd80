package examples

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// shellDocs are the pages whose sh blocks TestDocShellExamples runs, in this
// order, in one shell (api.md reads the message protocol.md sends).
var shellDocs = []string{"protocol.md", "api.md"}

// block is one fenced sh/bash block of a doc.
type block struct {
	doc  string
	line int // of the opening fence
	text string
	// want: outputs shown as "# {...}" comments, as patterns.
	want []*regexp.Regexp
}

var (
	fence = regexp.MustCompile("^```(sh|bash)\\s*$")
	// shownOutput is an output the doc shows: a comment starting with {,
	// on its own line or after a command.
	shownOutput = regexp.MustCompile(`(?:^|\s)#\s+(?:inbox/\S+\s+)?(\{.*\})\s*$`)
	// literalAddress: examples name the broker through the setup block's
	// variables only, so the test can point them at its own broker.
	literalAddress = regexp.MustCompile(`127\.0\.0\.1|localhost|:1883\b|:8080\b|:9090\b`)
)

// parseBlocks reads a doc's sh/bash blocks. The block that defines tok()
// is the setup and comes first; the others keep their order.
func parseBlocks(t *testing.T, doc string) []block {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "docs", doc))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []block
	var cur *block
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur == nil && fence.MatchString(l):
			cur = &block{doc: doc, line: n}
		case cur != nil && strings.TrimSpace(l) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += l + "\n"
			if m := shownOutput.FindStringSubmatch(l); m != nil {
				cur.want = append(cur.want, outputPattern(m[1]))
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	setup := -1
	for i, b := range blocks {
		if strings.Contains(b.text, "tok() {") {
			setup = i
			continue
		}
		if m := literalAddress.FindString(b.text); m != "" {
			t.Errorf("docs/%s:%d: the example names %q: use the setup block's variables ($HOST, $PORT, $API, $ADMIN)", doc, b.line, m)
		}
	}
	if setup < 0 {
		t.Fatalf("docs/%s: no setup block (the one defining tok())", doc)
	}
	return append([]block{blocks[setup]}, append(blocks[:setup:setup], blocks[setup+1:]...)...)
}

// outputPattern turns a shown output into a regexp: "..." matches anything.
func outputPattern(shown string) *regexp.Regexp {
	parts := strings.Split(shown, "...")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(strings.Join(parts, ".*"))
}

func TestOutputPattern(t *testing.T) {
	tests := []struct {
		name, shown, out string
		match            bool
	}{
		{"literal", `{"ok":true}`, `{"ok":true}`, true},
		{"wildcard", `{"msgid":"...","ok":true}`, `{"msgid":"3876","ok":true}`, true},
		{"deny: other value", `{"kicked":1}`, `{"kicked":0}`, false},
		{"deny: regexp characters are literal", `{"a":[1]}`, `{"a":11}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := outputPattern(tt.shown).MatchString(tt.out); got != tt.match {
				t.Errorf("pattern of %s on %s: %v, want %v", tt.shown, tt.out, got, tt.match)
			}
		})
	}
}

// TestDocShellExamples runs the sh blocks of docs/protocol.md and
// docs/api.md against the real binary started with inboxmq.dev.yaml (its
// secret and dev accounts, on port 0 and a temporary data dir), the way a
// reader runs them against `make run`: each command must succeed (set -e;
// curl with --fail-with-body) and each shown output must appear after its
// block started. Background jobs (a listening mosquitto_sub) live until
// the end.
func TestDocShellExamples(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "mosquitto_pub", "mosquitto_sub", "mosquitto_rr"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (make deps installs it): %v", tool, err)
		}
	}
	var blocks []block
	for _, doc := range shellDocs {
		blocks = append(blocks, parseBlocks(t, doc)...)
	}
	if t.Failed() {
		return
	}

	root := mqtttest.ModuleRoot(t)
	config := devConfig(t, root)
	p := mqtttest.StartProcess(t, config)
	host, port, _ := strings.Cut(p.MQTTAddr, ":")

	var script strings.Builder
	script.WriteString("set -e\ncurl() { command curl --fail-with-body \"$@\"; }\n")
	for i, b := range blocks {
		fmt.Fprintf(&script, "echo '@@block %d'\n%s", i, b.text)
	}
	script.WriteString("echo '@@done'\n")

	outPath := filepath.Join(t.TempDir(), "out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	sh := exec.Command("bash", "-c", script.String())
	sh.Dir = root
	sh.Env = append(os.Environ(), "HOST="+host, "PORT="+port,
		"API=http://"+p.HTTP+"/api/v1", "ADMIN=http://"+p.Admin+"/api/v1",
		"INBOXMQ="+mqtttest.Binary(t), "CONFIG="+config)
	// A file, not a pipe: background jobs keep a pipe open, and Wait would
	// wait for them. Their own process group lets the test end them.
	sh.Stdout, sh.Stderr = out, out
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-sh.Process.Pid, syscall.SIGKILL) }()
	exited := make(chan error, 1)
	go func() { exited <- sh.Wait() }()
	select {
	case err = <-exited:
	case <-time.After(90 * time.Second):
		t.Fatalf("the examples did not finish within 90s:\n%s", readFile(t, outPath))
	}
	if err != nil {
		text := readFile(t, outPath)
		t.Fatalf("an example failed (%v) in %s:\n%s", err, lastBlock(text, blocks), text)
	}

	// Shown outputs, some printed by background jobs: poll for them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		missing := missingOutputs(readFile(t, outPath), blocks)
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outputs shown in the docs did not appear:\n  %s\noutput:\n%s",
				strings.Join(missing, "\n  "), readFile(t, outPath))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// devConfig is inboxmq.dev.yaml on port-0 listeners and a temporary data
// dir: the examples use its secret and accounts as they are.
func devConfig(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "inboxmq.dev.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, r := range [][2]string{
		{"data_dir: data/dev", "data_dir: " + t.TempDir()},
		{`"127.0.0.1:1883"`, `"127.0.0.1:0"`}, {`"127.0.0.1:8083"`, `"127.0.0.1:0"`},
		{`"127.0.0.1:8080"`, `"127.0.0.1:0"`}, {`"127.0.0.1:9090"`, `"127.0.0.1:0"`},
	} {
		if !strings.Contains(text, r[0]) {
			t.Fatalf("inboxmq.dev.yaml no longer holds %s", r[0])
		}
		text = strings.Replace(text, r[0], r[1], 1)
	}
	path := filepath.Join(t.TempDir(), "inboxmq.dev.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// missingOutputs lists the shown outputs not printed after their block's
// marker.
func missingOutputs(out string, blocks []block) []string {
	var missing []string
	for i, b := range blocks {
		_, after, ok := strings.Cut(out, fmt.Sprintf("@@block %d\n", i))
		for _, re := range b.want {
			if !ok || !re.MatchString(after) {
				missing = append(missing, fmt.Sprintf("docs/%s:%d: %s", b.doc, b.line, re))
			}
		}
	}
	return missing
}

// lastBlock names the block that was running when the script stopped.
func lastBlock(out string, blocks []block) string {
	last := -1
	for i := range blocks {
		if strings.Contains(out, fmt.Sprintf("@@block %d\n", i)) {
			last = i
		}
	}
	if last < 0 {
		return "the script's prelude"
	}
	return fmt.Sprintf("the block at docs/%s:%d", blocks[last].doc, blocks[last].line)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// writeLegacy starts a redis-server and fills the legacy hashes the way the
// socket.io server left them, malformed entries included. It returns a
// client of that server.
func writeLegacy(t *testing.T) *redis.Client {
	t.Helper()
	str := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	history := map[string]string{
		"10021": str([]any{
			map[string]any{"from": 10001, "to": 10021, "msg": "你好", "nickname": "张三", "avatar": "https://a.example/1.png", "time": 1546300800},
			"not an object",
			map[string]any{"from": "10001", "content": "second", "time": "2019-01-01 00:00:01", "extra": map[string]any{"k": 1}},
			map[string]any{"to": 10021, "msg": "who sent this?"},
			map[string]any{"_method_": "SendMsg", "uid": 10003, "ct": "envelope style", "ts": 1546300802000},
			map[string]any{"from": 10001, "msg": ""},
		}),
		"10031":     "{not json",
		"not a uid": str([]any{map[string]any{"from": 10001, "msg": "x"}}),
		"10041":     str([]any{map[string]any{"from": 10001, "to": 10099, "msg": "someone else's"}}),
	}
	notices := map[string]string{
		"10021": str([]any{
			`{"_method_":"SystemNot","action":"1","msgtype":2,"ct":"Order shipped","msgid":77,"event":"order"}`,
			`{"content":"Welcome","msgtype":"1"}`,
			`{broken`,
			5,
		}),
	}
	c := redistest.Start(t, redistest.Config{}).Client(t)
	ctx := context.Background()
	for hash, fields := range map[string]map[string]string{"chat_history": history, "nodejs_notification": notices} {
		for f, v := range fields {
			if err := c.HSet(ctx, hash, f, v).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return c
}

func mustImport(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"import-legacy"}, args...)...)
	if code != 0 {
		t.Fatalf("import-legacy %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
	}
	if !strings.Contains(errOut, "100% ") {
		t.Errorf("import-legacy %v printed no finished progress line:\n%s", args, errOut)
	}
	return out
}

func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l) {
			t.Errorf("output lacks %q:\n%s", l, out)
		}
	}
}

// The import into the embedded store, with the real binary on hashes in a
// real redis-server: a dry run writes nothing, the import appends the good
// entries in order with their senders and marks, a re-run imports nothing
// twice, --delete trims the hashes to what was malformed, and the broker
// then serves what was imported.
func TestImportLegacy_EmbeddedStore(t *testing.T) {
	rc := writeLegacy(t)
	legacyRedis := rc.Options().Addr
	cfg := mqtttest.WriteConfig(t, t.TempDir())
	args := []string{"--config", cfg, "--redis", legacyRedis}

	out := mustImport(t, append(args, "--dry-run")...)
	wantLines(t, out,
		"chat_history: 4 fields, would import 3, skipped 0 (imported before), malformed 6",
		"nodejs_notification: 1 fields, would import 2, skipped 0 (imported before), malformed 2",
		"malformed, no sender (from): 1",
		"malformed, value is not a JSON array: 1",
		"malformed, field is not a valid uid: 1",
		"malformed, to is not the hash field (the recipient): 1",
		"chat_history 10021[1]: not a JSON object",
		"chat_history 10021[5]: no content",
		"nodejs_notification 10021[3]: not a JSON string or object",
	)
	out = mustImport(t, args...)
	wantLines(t, out,
		"chat_history: 4 fields, imported 3, skipped 0 (imported before), malformed 6",
		"nodejs_notification: 1 fields, imported 2, skipped 0 (imported before), malformed 2")
	out = mustImport(t, args...)
	wantLines(t, out,
		"chat_history: 4 fields, imported 0, skipped 3 (imported before), malformed 6",
		"nodejs_notification: 1 fields, imported 0, skipped 2 (imported before), malformed 2")
	out = mustImport(t, append(args, "--delete")...)
	wantLines(t, out, "imported 0, skipped 3", "chat_history: 1 fields removed or trimmed, 0 changed")

	// What stays in the legacy hashes is exactly what was malformed.
	ctx := context.Background()
	var left []any
	if err := json.Unmarshal([]byte(rc.HGet(ctx, "chat_history", "10021").Val()), &left); err != nil || len(left) != 3 {
		t.Fatalf("chat_history 10021 after --delete = %v (%v), want the 3 malformed entries", left, err)
	}
	if v := rc.HGet(ctx, "chat_history", "10031").Val(); v != "{not json" {
		t.Fatalf("a malformed field was changed: %q", v)
	}
	if n := rc.HLen(ctx, "nodejs_notification").Val(); n != 1 {
		t.Fatalf("nodejs_notification holds %d fields after --delete, want 1 (its malformed entries)", n)
	}

	// The broker serves the imported entries, in order, as if sent then.
	p := mqtttest.StartProcess(t, cfg)
	api := mqtttest.HTTP{Base: "http://" + p.HTTP}
	bob := mqtttest.Auth{Token: mqtttest.Token(t, "10021")}
	r := api.Do(t, "GET", "/api/v1/conversations/10001/messages", bob, nil)
	msgs := r.List("messages")
	if r.Status != http.StatusOK || len(msgs) != 2 {
		t.Fatalf("bob's conversation with 10001: %d %s", r.Status, r.Raw)
	}
	if msgs[0]["ct"] != "second" || msgs[1]["ct"] != "你好" || msgs[1]["nickname"] != "张三" || msgs[1]["from"] != "10001" {
		t.Fatalf("imported conversation, newest first = %s", r.Raw)
	}
	var extra struct {
		K        int `json:"k"`
		Imported struct {
			Time int64  `json:"time"`
			ID   string `json:"id"`
		} `json:"imported"`
	}
	if err := json.Unmarshal([]byte(msgs[0]["extra"].(string)), &extra); err != nil || extra.K != 1 ||
		extra.Imported.Time != 1546300801000 || extra.Imported.ID == "" {
		t.Fatalf("extra of an imported message = %v (%v), want the app's k and imported.time 1546300801000", msgs[0]["extra"], err)
	}
	r = api.Do(t, "GET", "/api/v1/conversations/10003/messages", bob, nil)
	if l := r.List("messages"); len(l) != 1 || l[0]["ct"] != "envelope style" {
		t.Fatalf("message stored as a SendMsg envelope: %s", r.Raw)
	}
	// The sender's copy is in its history too, marked by its cid.
	r = api.Do(t, "GET", "/api/v1/conversations/10021/messages", mqtttest.Auth{Token: mqtttest.Token(t, "10001")}, nil)
	if l := r.List("messages"); len(l) != 2 || !strings.HasPrefix(l[0]["cid"].(string), "legacy:") {
		t.Fatalf("sender's copies: %s", r.Raw)
	}
	r = api.Do(t, "GET", "/api/v1/notices", bob, nil)
	var got [][2]any
	for _, n := range r.List("notices") {
		got = append(got, [2]any{n["ct"], n["msgtype"]})
	}
	if want := [][2]any{{"Welcome", json.Number("1")}, {"Order shipped", json.Number("2")}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("imported notices = %v, want %v (%s)", got, want, r.Raw)
	}

	// The embedded store is the running broker's: the import refuses to
	// touch it, and says why.
	code, _, errOut := runCLI(t, append([]string{"import-legacy"}, args...)...)
	if code == 0 || !strings.Contains(errOut, "in use") {
		t.Fatalf("import-legacy beside a running broker: exit %d, %s", code, errOut)
	}
}

// With the Redis store the import runs beside a running broker, and a
// user who connects afterwards receives the imported messages in order.
func TestImportLegacy_RedisStoreWhileRunning(t *testing.T) {
	rc := writeLegacy(t) // the legacy hashes and the store share one redis-server
	addr := rc.Options().Addr
	nodes, cfgs := startNodes(t, 1, []string{addr}, false)
	out := mustImport(t, "--config", cfgs[0], "--redis", addr, "--delete")
	wantLines(t, out,
		"chat_history: 4 fields, imported 3, skipped 0 (imported before), malformed 6",
		"nodejs_notification: 1 fields, imported 2, skipped 0 (imported before), malformed 2")

	bob := mqtttest.MustV3(t, nodes[0].MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	var got []string
	for range 5 {
		e := bob.Inbox.Next(t, 10*time.Second)
		got = append(got, e.Method()+" "+e.Str("uid")+" "+e.Str("ct"))
	}
	want := []string{"SendMsg 10001 你好", "SendMsg 10001 second", "SendMsg 10003 envelope style",
		"SystemNot  Order shipped", "SystemNot  Welcome"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("bob received %q, want %q", got, want)
	}
	// A second run finds everything imported (and the hashes trimmed).
	wantLines(t, mustImport(t, "--config", cfgs[0], "--redis", addr),
		"chat_history: 4 fields, imported 0, skipped 0 (imported before), malformed 6")
}

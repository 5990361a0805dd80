package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/bridge"
)

// FuzzParseNotice checks that ParseNotice never panics, that what it
// accepts keeps every documented rule, and that an accepted notice,
// written back in the legacy shape, parses to the same notice.
func FuzzParseNotice(f *testing.F) {
	// More seeds live in testdata/fuzz/FuzzParseNotice.
	for _, s := range []string{
		`{"toWho":[10021,"10022"],"needStore":true,"content":"...","msgtype":0,"msgid":0,"event":""}`,
		`{"content":"c"}`,
		`{"toWho":[1,1,"1"],"content":"c","msgid":"x"}`,
		`{"toWho":["a/b"],"content":"c"}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		n, err := ParseNotice(payload)
		if err != nil {
			if !errors.Is(err, ErrBadNotice) {
				t.Fatalf("error %v does not wrap ErrBadNotice", err)
			}
			if !reflect.DeepEqual(n, Notice{}) {
				t.Fatalf("on error got %+v, want the zero Notice", n)
			}
			return
		}
		if len(payload) > MaxNoticeBytes || !utf8.Valid(payload) {
			t.Fatalf("accepted a payload of %d bytes, valid UTF-8 %v", len(payload), utf8.Valid(payload))
		}
		if n.Content == "" || len(n.Content) > MaxNoticeContent {
			t.Fatalf("content of %d bytes accepted", len(n.Content))
		}
		if len(n.UIDs) > MaxNoticeUIDs || (n.UIDs != nil && len(n.UIDs) == 0) {
			t.Fatalf("UIDs %v: want nil or 1 to %d", n.UIDs, MaxNoticeUIDs)
		}
		seen := map[string]bool{}
		for _, u := range n.UIDs {
			if !acl.ValidUID(u) || seen[u] {
				t.Fatalf("uid %q invalid or repeated in %v", u, n.UIDs)
			}
			seen[u] = true
		}
		if err := bridge.ValidateMsgIDLiteral(n.MsgID); err != nil {
			t.Fatalf("MsgID %q: %v", n.MsgID, err)
		}
		if len(n.Event) > bridge.MaxEventBytes {
			t.Fatalf("event of %d bytes accepted", len(n.Event))
		}
		if int64(n.MsgType) != int64(int32(n.MsgType)) {
			t.Fatalf("msgtype %d beyond int32", n.MsgType)
		}

		again, err := ParseNotice(legacyNotice(t, n))
		if err != nil {
			t.Fatalf("re-encoded notice refused: %v", err)
		}
		if !reflect.DeepEqual(again, n) {
			t.Fatalf("round trip changed the notice:\n%+v\n%+v", n, again)
		}
	})
}

// legacyNotice writes n in the shape a back-end publishes.
func legacyNotice(t *testing.T, n Notice) []byte {
	t.Helper()
	to := make([]any, len(n.UIDs))
	for i, u := range n.UIDs {
		// Numbers as numbers, as a Node.js back-end sends them.
		if _, err := strconv.ParseUint(u, 10, 64); err == nil && (u == "0" || u[0] != '0') {
			to[i] = json.Number(u)
		} else {
			to[i] = u
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // else a msgid literal's "<" would change
	err := enc.Encode(map[string]any{
		"toWho": to, "needStore": n.NeedStore, "content": n.Content,
		"msgtype": n.MsgType, "msgid": json.RawMessage(n.MsgID), "event": n.Event,
	})
	if err != nil {
		t.Fatalf("encode %+v: %v", n, err)
	}
	return buf.Bytes()
}

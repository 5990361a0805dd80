package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

func TestAppendEnvelope(t *testing.T) {
	tests := []struct {
		name   string
		msg    inbox.Message
		want   string
		fields map[string]any // what the envelope decodes to (numbers as json.Number)
	}{
		{
			name: "SendMsg",
			msg: inbox.Message{UID: "10021", Kind: inbox.KindDirect, ID: "0a1b", Peer: "10001",
				Nickname: "张三", Avatar: "https://x/a.png", Content: "你好", Extra: ""},
			want: `{"_method_":"SendMsg","action":"3","msgid":"0a1b","nickname":"张三","avatar":"https://x/a.png","uid":10001,"ct":"你好","extra":"","ts":0}`,
			fields: map[string]any{"_method_": "SendMsg", "action": "3", "msgid": "0a1b", "nickname": "张三",
				"avatar": "https://x/a.png", "uid": json.Number("10001"), "ct": "你好", "extra": ""},
		},
		{
			name: "SendMsg escaping",
			msg: inbox.Message{Kind: inbox.KindDirect, ID: "m", Peer: "alice",
				Nickname: "a\"b\\c", Avatar: "</script>&", Content: "l1\nl2\r\t\b\f\x00\x1f\x7f", Extra: `{"k":"<v>"}`},
			want: `{"_method_":"SendMsg","action":"3","msgid":"m","nickname":"a\"b\\c","avatar":"</script>&","uid":"alice",` +
				`"ct":"l1\nl2\r\t\b\f\u0000\u001f` + "\x7f" + `","extra":"{\"k\":\"<v>\"}","ts":0}`,
			fields: map[string]any{"_method_": "SendMsg", "action": "3", "msgid": "m", "nickname": "a\"b\\c",
				"avatar": "</script>&", "uid": "alice", "ct": "l1\nl2\r\t\b\f\x00\x1f\x7f", "extra": `{"k":"<v>"}`},
		},
		{
			name: "SendMsg invalid UTF-8 and line separators",
			msg:  inbox.Message{Kind: inbox.KindDirect, ID: "m", Peer: "1", Content: "a\xffb\xe4\xbd\u2028\u2029😀"},
			want: `{"_method_":"SendMsg","action":"3","msgid":"m","nickname":"","avatar":"","uid":1,"ct":"a\ufffdb\ufffd\ufffd\u2028\u2029😀","extra":"","ts":0}`,
			fields: map[string]any{"_method_": "SendMsg", "action": "3", "msgid": "m", "nickname": "", "avatar": "",
				"uid": json.Number("1"), "ct": "a\uFFFDb\uFFFD\uFFFD\u2028\u2029😀", "extra": ""},
		},
		{
			name: "MsgSent",
			msg: inbox.Message{UID: "10001", Kind: inbox.KindSent, ID: "0a1b", Peer: "10021",
				Content: "你好", Extra: "e", CID: "c-1", Time: 1764950400123},
			want: `{"_method_":"MsgSent","action":"6","msgid":"0a1b","to":10021,"ct":"你好","extra":"e","cid":"c-1","ts":1764950400123}`,
			fields: map[string]any{"_method_": "MsgSent", "action": "6", "msgid": "0a1b", "to": json.Number("10021"),
				"ct": "你好", "extra": "e", "cid": "c-1"},
		},
		{
			name: "MsgSent leading zero uid stays a string",
			msg:  inbox.Message{Kind: inbox.KindSent, ID: "m", Peer: "007", Content: "x"},
			want: `{"_method_":"MsgSent","action":"6","msgid":"m","to":"007","ct":"x","extra":"","cid":"","ts":0}`,
			fields: map[string]any{"_method_": "MsgSent", "action": "6", "msgid": "m", "to": "007",
				"ct": "x", "extra": "", "cid": ""},
		},
		{
			name:   "DelMsg",
			msg:    inbox.Message{Kind: inbox.KindDelete, ID: "new", Ref: "0a1b"},
			want:   `{"_method_":"DelMsg","action":"4","msgid":"0a1b","ts":0}`,
			fields: map[string]any{"_method_": "DelMsg", "action": "4", "msgid": "0a1b"},
		},
		{
			name: "SystemNot default msgid",
			msg:  inbox.Message{Kind: inbox.KindNotice, Content: "维护通知", MsgType: 0},
			want: `{"_method_":"SystemNot","action":"1","msgtype":0,"ct":"维护通知","msgid":0,"event":"","ts":0}`,
			fields: map[string]any{"_method_": "SystemNot", "action": "1", "msgtype": json.Number("0"),
				"ct": "维护通知", "msgid": json.Number("0"), "event": ""},
		},
		{
			name: "SystemNot number msgid",
			msg:  inbox.Message{Kind: inbox.KindNotice, Content: "c", MsgType: -7, Ref: "123", Event: "friend_add"},
			want: `{"_method_":"SystemNot","action":"1","msgtype":-7,"ct":"c","msgid":123,"event":"friend_add","ts":0}`,
			fields: map[string]any{"_method_": "SystemNot", "action": "1", "msgtype": json.Number("-7"),
				"ct": "c", "msgid": json.Number("123"), "event": "friend_add"},
		},
		{
			name: "SystemNot string msgid kept raw",
			msg:  inbox.Message{Kind: inbox.KindNotice, Content: "c", MsgType: 2, Ref: `"a\"<\u00e9"`},
			want: `{"_method_":"SystemNot","action":"1","msgtype":2,"ct":"c","msgid":"a\"<\u00e9","event":"","ts":0}`,
			fields: map[string]any{"_method_": "SystemNot", "action": "1", "msgtype": json.Number("2"),
				"ct": "c", "msgid": `a"<é`, "event": ""},
		},
		{
			name:   "ReadMsg",
			msg:    inbox.Message{Kind: inbox.KindReceipt, Peer: "10021", Ref: "0a1b"},
			want:   `{"_method_":"ReadMsg","action":"7","uid":10021,"msgid":"0a1b","ts":0}`,
			fields: map[string]any{"_method_": "ReadMsg", "action": "7", "uid": json.Number("10021"), "msgid": "0a1b"},
		},
		{
			name:   "ReadMsg 16-digit uid is a string",
			msg:    inbox.Message{Kind: inbox.KindReceipt, Peer: "1234567890123456", Ref: "m"},
			want:   `{"_method_":"ReadMsg","action":"7","uid":"1234567890123456","msgid":"m","ts":0}`,
			fields: map[string]any{"_method_": "ReadMsg", "action": "7", "uid": "1234567890123456", "msgid": "m"},
		},
		{
			name: "EditMsg",
			msg: inbox.Message{Kind: inbox.KindEdit, ID: "new", Peer: "10021", Ref: "0a1b", Content: "改\"了\"",
				Time: 1764950400999},
			want: `{"_method_":"EditMsg","action":"8","msgid":"0a1b","uid":10021,"ct":"改\"了\"","ts":1764950400999}`,
			fields: map[string]any{"_method_": "EditMsg", "action": "8", "msgid": "0a1b", "uid": json.Number("10021"),
				"ct": "改\"了\""},
		},
		{
			name:   "ReadMsg to the reader's own devices",
			msg:    inbox.Message{Kind: inbox.KindReadSync, ID: "new", Peer: "bob", Ref: "0a1b", MsgType: 3, Time: 5},
			want:   `{"_method_":"ReadMsg","action":"7","uid":"bob","msgid":"0a1b","unread":3,"ts":5}`,
			fields: map[string]any{"_method_": "ReadMsg", "action": "7", "uid": "bob", "msgid": "0a1b", "unread": json.Number("3")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendEnvelope(nil, tt.msg)
			if err != nil {
				t.Fatalf("AppendEnvelope: %v", err)
			}
			if string(got) != tt.want {
				t.Fatalf("AppendEnvelope =\n %s\nwant\n %s", got, tt.want)
			}
			tt.fields["ts"] = json.Number(strconv.FormatInt(tt.msg.Time, 10))
			checkDecodes(t, got, tt.fields)

			// Appending keeps what dst held.
			prefix := []byte("prefix:")
			got2, err := AppendEnvelope(prefix, tt.msg)
			if err != nil || string(got2) != "prefix:"+tt.want {
				t.Fatalf("AppendEnvelope(prefix) = %q, %v", got2, err)
			}
		})
	}
}

// checkDecodes checks env is one valid JSON object with exactly fields.
func checkDecodes(t *testing.T, env []byte, fields map[string]any) {
	t.Helper()
	if !json.Valid(env) {
		t.Fatalf("not valid JSON: %s", env)
	}
	dec := json.NewDecoder(bytes.NewReader(env))
	dec.UseNumber()
	var got map[string]any
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode %s: %v", env, err)
	}
	if !reflect.DeepEqual(got, fields) {
		t.Fatalf("decoded\n %#v\nwant\n %#v", got, fields)
	}
}

func TestAppendEnvelopeUID(t *testing.T) {
	tests := []struct {
		name string
		uid  string
		want string
	}{
		{name: "digits", uid: "10001", want: `10001`},
		{name: "zero", uid: "0", want: `0`},
		{name: "15 digits", uid: "999999999999999", want: `999999999999999`},
		{name: "16 digits", uid: "1000000000000000", want: `"1000000000000000"`},
		{name: "leading zero", uid: "007", want: `"007"`},
		{name: "double zero", uid: "00", want: `"00"`},
		{name: "letters", uid: "abc", want: `"abc"`},
		{name: "negative", uid: "-1", want: `"-1"`},
		{name: "fraction", uid: "1.5", want: `"1.5"`},
		{name: "empty", uid: "", want: `""`},
		{name: "hostile", uid: `1,"x":"y`, want: `"1,\"x\":\"y"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendEnvelope(nil, inbox.Message{Kind: inbox.KindReceipt, Peer: tt.uid, Ref: "m"})
			if err != nil {
				t.Fatal(err)
			}
			want := `{"_method_":"ReadMsg","action":"7","uid":` + tt.want + `,"msgid":"m","ts":0}`
			if string(got) != want {
				t.Fatalf("got %s, want %s", got, want)
			}
			if !json.Valid(got) {
				t.Fatalf("not valid JSON: %s", got)
			}
		})
	}
}

func TestTyping(t *testing.T) {
	for _, tt := range []struct {
		name, from string
		want       string
		fields     map[string]any
	}{
		{name: "numeric uid", from: "10001", want: `{"_method_":"Typing","action":"9","uid":10001,"ts":1764950400123}`,
			fields: map[string]any{"_method_": "Typing", "action": "9", "uid": json.Number("10001"), "ts": json.Number("1764950400123")}},
		{name: "string uid", from: "alice.b", want: `{"_method_":"Typing","action":"9","uid":"alice.b","ts":1764950400123}`,
			fields: map[string]any{"_method_": "Typing", "action": "9", "uid": "alice.b", "ts": json.Number("1764950400123")}},
		{name: "hostile uid stays a string", from: `1,"x":"y`, want: `{"_method_":"Typing","action":"9","uid":"1,\"x\":\"y","ts":1764950400123}`,
			fields: map[string]any{"_method_": "Typing", "action": "9", "uid": `1,"x":"y`, "ts": json.Number("1764950400123")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Typing(tt.from, 1764950400123)
			if string(got) != tt.want {
				t.Fatalf("Typing = %s, want %s", got, tt.want)
			}
			checkDecodes(t, got, tt.fields)
		})
	}
}

func TestAppendEnvelopeErrors(t *testing.T) {
	tests := []struct {
		name string
		msg  inbox.Message
		want error
	}{
		{name: "zero kind", msg: inbox.Message{}, want: ErrUnknownKind},
		{name: "kind beyond the last", msg: inbox.Message{Kind: inbox.KindReadSync + 1}, want: ErrUnknownKind},
		{name: "notice msgid breaking out", msg: inbox.Message{Kind: inbox.KindNotice, Ref: `1,"x":2`}, want: ErrBadMsgIDLiteral},
		{name: "notice msgid bare word", msg: inbox.Message{Kind: inbox.KindNotice, Ref: `abc`}, want: ErrBadMsgIDLiteral},
		{name: "notice msgid true", msg: inbox.Message{Kind: inbox.KindNotice, Ref: `true`}, want: ErrBadMsgIDLiteral},
		{name: "notice msgid object", msg: inbox.Message{Kind: inbox.KindNotice, Ref: `{}`}, want: ErrBadMsgIDLiteral},
		{name: "notice msgid with space", msg: inbox.Message{Kind: inbox.KindNotice, Ref: ` 1`}, want: ErrBadMsgIDLiteral},
		{name: "notice msgid unterminated", msg: inbox.Message{Kind: inbox.KindNotice, Ref: `"a`}, want: ErrBadMsgIDLiteral},
		{name: "notice msgid too long", msg: inbox.Message{Kind: inbox.KindNotice, Ref: strings.Repeat("1", MaxMsgIDBytes+1)}, want: ErrBadMsgIDLiteral},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := AppendEnvelope(dst, tt.msg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if string(got) != "keep" {
				t.Fatalf("dst changed on error: %q", got)
			}
		})
	}
}

func TestValidateMsgIDLiteral(t *testing.T) {
	tests := []struct {
		name string
		lit  string
		code string // "" for valid
	}{
		{name: "zero", lit: `0`},
		{name: "integer", lit: `123`},
		{name: "negative float exponent", lit: `-1.5E+3`},
		{name: "exponent lower", lit: `1e-7`},
		{name: "string", lit: `"abc"`},
		{name: "empty string", lit: `""`},
		{name: "escapes", lit: `"\"\\\/\b\f\n\r\t\u00e9\uD800"`},
		{name: "unicode", lit: `"张三"`},
		{name: "128 bytes", lit: `"` + strings.Repeat("a", 126) + `"`},
		{name: "empty", lit: ``, code: CodeBadField},
		{name: "129 bytes", lit: `"` + strings.Repeat("a", 127) + `"`, code: CodeTooLarge},
		{name: "leading zero", lit: `01`, code: CodeBadField},
		{name: "plus", lit: `+1`, code: CodeBadField},
		{name: "dot only", lit: `1.`, code: CodeBadField},
		{name: "leading dot", lit: `.5`, code: CodeBadField},
		{name: "bare exponent", lit: `1e`, code: CodeBadField},
		{name: "minus only", lit: `-`, code: CodeBadField},
		{name: "hex", lit: `0x1`, code: CodeBadField},
		{name: "NaN", lit: `NaN`, code: CodeBadField},
		{name: "true", lit: `true`, code: CodeBadField},
		{name: "null", lit: `null`, code: CodeBadField},
		{name: "array", lit: `[1]`, code: CodeBadField},
		{name: "object", lit: `{}`, code: CodeBadField},
		{name: "trailing space", lit: `1 `, code: CodeBadField},
		{name: "two values", lit: `1,2`, code: CodeBadField},
		{name: "two strings", lit: `"a""b"`, code: CodeBadField},
		{name: "string then more", lit: `"a",1`, code: CodeBadField},
		{name: "single quotes", lit: `'a'`, code: CodeBadField},
		{name: "unterminated", lit: `"a`, code: CodeBadField},
		{name: "lone quote", lit: `"`, code: CodeBadField},
		{name: "escaped closing quote", lit: `"a\"`, code: CodeBadField},
		{name: "bad escape", lit: `"\x41"`, code: CodeBadField},
		{name: "short unicode escape", lit: `"\u12"`, code: CodeBadField},
		{name: "raw newline", lit: "\"a\nb\"", code: CodeBadField},
		{name: "invalid UTF-8", lit: "\"\xff\"", code: CodeBadField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateMsgIDLiteral(tt.lit)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("ValidateMsgIDLiteral(%q) = %v", tt.lit, err)
				}
				env, err := AppendEnvelope(nil, inbox.Message{Kind: inbox.KindNotice, Ref: tt.lit})
				if err != nil || !json.Valid(env) {
					t.Fatalf("AppendEnvelope = %s, %v", env, err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != tt.code {
				t.Fatalf("ValidateMsgIDLiteral(%q) = %v, want code %s", tt.lit, err, tt.code)
			}
		})
	}
}

func TestLogout(t *testing.T) {
	tests := []struct {
		name   string
		reason string
		want   string
	}{
		{name: "plain", reason: "kicked", want: `{"_method_":"Logout","action":"5","reason":"kicked"}`},
		{name: "empty", reason: "", want: `{"_method_":"Logout","action":"5","reason":""}`},
		{name: "escaped", reason: "登录于\"别处\"\n<b>", want: `{"_method_":"Logout","action":"5","reason":"登录于\"别处\"\n<b>"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Logout(tt.reason)
			if string(got) != tt.want {
				t.Fatalf("Logout =\n %s\nwant\n %s", got, tt.want)
			}
			checkDecodes(t, got, map[string]any{"_method_": "Logout", "action": "5", "reason": tt.reason})
		})
	}
}

func TestErrorEnvelope(t *testing.T) {
	tests := []struct {
		name       string
		err        *Error
		topic, cid string
		want       string
		fields     map[string]any
	}{
		{
			name: "parse error", err: &Error{Code: CodeBadUID, Detail: `uid "a b" is not 1 to 64 of [A-Za-z0-9_.-]`},
			topic: TopicSendMsg, cid: "c-1",
			want: `{"_method_":"Error","action":"0","code":"bad_uid","detail":"uid \"a b\" is not 1 to 64 of [A-Za-z0-9_.-]","topic":"im/sendmsg","cid":"c-1"}`,
			fields: map[string]any{"_method_": "Error", "action": "0", "code": "bad_uid",
				"detail": `uid "a b" is not 1 to 64 of [A-Za-z0-9_.-]`, "topic": "im/sendmsg", "cid": "c-1"},
		},
		{
			name: "broker error without cid", err: &Error{Code: CodeRateLimited}, topic: TopicGeneric,
			want:   `{"_method_":"Error","action":"0","code":"rate_limited","detail":"","topic":"im","cid":""}`,
			fields: map[string]any{"_method_": "Error", "action": "0", "code": "rate_limited", "detail": "", "topic": "im", "cid": ""},
		},
		{
			name: "nil error", err: nil, topic: "im/x\x00", cid: "\xff",
			want:   `{"_method_":"Error","action":"0","code":"internal","detail":"","topic":"im/x\u0000","cid":"\ufffd"}`,
			fields: map[string]any{"_method_": "Error", "action": "0", "code": "internal", "detail": "", "topic": "im/x\x00", "cid": "\uFFFD"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ErrorEnvelope(tt.err, tt.topic, tt.cid)
			if string(got) != tt.want {
				t.Fatalf("ErrorEnvelope =\n %s\nwant\n %s", got, tt.want)
			}
			checkDecodes(t, got, tt.fields)
		})
	}
}

func TestParseThenEnvelope(t *testing.T) {
	// What a client sends comes back to it unchanged, however it is spelled.
	payload := `{"uid":"007","msg":"\u003cb\u003e \"hi\" \ud83d\ude00 \u2028","extra":"{\"a\":[1]}","cid":"c\\1"}`
	req, err := Parse(TopicSendMsg, []byte(payload), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	env, err := AppendEnvelope(nil, inbox.Message{Kind: inbox.KindSent, ID: "m", Peer: req.UID,
		Content: req.Msg, Extra: req.Extra, CID: req.CID})
	if err != nil {
		t.Fatal(err)
	}
	checkDecodes(t, env, map[string]any{"_method_": "MsgSent", "action": "6", "msgid": "m", "to": "007",
		"ct": "<b> \"hi\" 😀 \u2028", "extra": `{"a":[1]}`, "cid": `c\1`, "ts": json.Number("0")})

	req, err = Parse(TopicSystemAdmin, []byte(`{"content":"c","msgid":"x\"y"}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	env, err = AppendEnvelope(nil, inbox.Message{Kind: inbox.KindNotice, Content: req.Msg, Ref: req.MsgID})
	if err != nil {
		t.Fatal(err)
	}
	checkDecodes(t, env, map[string]any{"_method_": "SystemNot", "action": "1", "msgtype": json.Number("0"),
		"ct": "c", "msgid": `x"y`, "event": "", "ts": json.Number("0")})
}

func TestAppendEnvelopeDoesNotAllocate(t *testing.T) {
	msgs := []inbox.Message{
		{Kind: inbox.KindDirect, ID: "0a1b", Peer: "10001", Nickname: "张三", Avatar: "https://x/a.png", Content: "你好\n\xff\u2028", Extra: "e"},
		{Kind: inbox.KindSent, ID: "0a1b", Peer: "alice", Content: "x", CID: "c"},
		{Kind: inbox.KindDelete, Ref: "0a1b"},
		{Kind: inbox.KindNotice, Content: "c", MsgType: 3, Ref: `"abc"`, Event: "e"},
		{Kind: inbox.KindNotice, Content: "c", Ref: `-1.5e3`},
		{Kind: inbox.KindReceipt, Peer: "10021", Ref: "0a1b"},
	}
	buf := make([]byte, 0, 4096)
	for _, m := range msgs {
		t.Run(m.Kind.String(), func(t *testing.T) {
			allocs := testing.AllocsPerRun(100, func() {
				if _, err := AppendEnvelope(buf[:0], m); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Fatalf("AppendEnvelope allocates %v times per call", allocs)
			}
		})
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	var all strings.Builder
	for b := 0; b < 256; b++ {
		all.WriteByte(byte(b))
	}
	tests := []string{"", "plain", "<>&'", "\u2028\u2029", "\xed\xa0\x80", "\xf4\x90\x80\x80", "😀\xf0\x9f\x98", all.String()}
	for _, s := range tests {
		if got, want := appendString(nil, s), encodeJSON(t, s); !bytes.Equal(got, want) {
			t.Errorf("appendString(%q) = %s, encoding/json = %s", s, got, want)
		}
	}
}

// encodeJSON is encoding/json's rendering of s without HTML escaping.
func encodeJSON(t testing.TB, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatalf("encode %q: %v", s, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

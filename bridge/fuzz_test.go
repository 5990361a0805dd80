package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/inboxmq/inboxmq/acl"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/inboxmq/inboxmq/inbox"
)

// fuzzTopics are the topics FuzzParse picks from by index; the last one is
// not an im topic.
var fuzzTopics = []string{TopicGeneric, TopicSendMsg, TopicDelMsg, TopicConn, TopicSystemAdmin, TopicRead, "im/unknown",
	TopicTyping, TopicEditMsg}

// FuzzParse takes the topic as an index so that the fuzzer spends its time
// on payloads rather than on misspelt topics.
func FuzzParse(f *testing.F) {
	for _, s := range []struct {
		topic   uint8
		payload string
	}{
		{1, `{"uid":10021,"msg":"你好","extra":"","cid":"c-1"}`},
		{2, `{"uid":10021,"msgid":"0a1b"}`},
		{3, `{"uid":10001,"nickname":"张三","avatar":"https://x/a.png"}`},
		{4, `{"uid":10021,"content":"c","msgtype":0,"msgid":0,"event":""}`},
		{5, `{"uid":10021,"msgid":"0a1b"}`},
		{0, `{"_method_":"SendMsg","uid":"u","msg":"\u4f60\ud800"}`},
	} {
		f.Add(s.topic, []byte(s.payload))
	}
	// A small MaxContent lets the fuzzer reach the size limits.
	lim := Limits{MaxContent: 64}
	f.Fuzz(func(t *testing.T, topic uint8, payload []byte) {
		req, err := Parse(fuzzTopics[int(topic)%len(fuzzTopics)], payload, lim)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is %T, want *Error", err, err)
			}
			switch e.Code {
			case CodeBadJSON, CodeMissingField, CodeBadField, CodeBadUID, CodeEmptyMessage, CodeTooLarge, CodeUnknownMethod, CodeUnknownTopic:
			default:
				t.Fatalf("unexpected code %q", e.Code)
			}
			if len(e.Detail) > 200 {
				t.Fatalf("detail is %d bytes", len(e.Detail))
			}
			if req.UID != "" || req.Msg != "" || req.MsgID != "" || req.Extra != "" {
				t.Fatalf("fields set on error: %+v", req)
			}
			if len(req.CID) > MaxCIDBytes {
				t.Fatalf("cid of %d bytes on error", len(req.CID))
			}
			return
		}
		checkRequest(t, req, lim)

		// Whatever was accepted renders as valid JSON carrying the same text.
		for _, m := range requestMessages(req) {
			env, err := AppendEnvelope(nil, m)
			if err != nil {
				t.Fatalf("AppendEnvelope(%+v): %v", m, err)
			}
			var got map[string]any
			if err := json.Unmarshal(env, &got); err != nil {
				t.Fatalf("envelope %s: %v", env, err)
			}
			if m.Content != "" && got["ct"] != m.Content {
				t.Fatalf("ct = %q, want %q", got["ct"], m.Content)
			}
		}
	})
}

// checkRequest checks the invariants of every Request Parse accepts.
func checkRequest(t *testing.T, req Request, lim Limits) {
	t.Helper()
	for name, s := range map[string]string{"UID": req.UID, "Msg": req.Msg, "Extra": req.Extra, "CID": req.CID,
		"MsgID": req.MsgID, "Nickname": req.Nickname, "Avatar": req.Avatar, "Event": req.Event} {
		if !utf8.ValidString(s) {
			t.Fatalf("%s is not valid UTF-8: %q", name, s)
		}
	}
	if req.UID != "" && !acl.ValidUID(req.UID) {
		t.Fatalf("invalid uid %q", req.UID)
	}
	if len(req.Msg) > lim.maxContent() || len(req.Extra) > lim.maxContent() {
		t.Fatalf("msg %d / extra %d bytes over limit %d", len(req.Msg), len(req.Extra), lim.maxContent())
	}
	if len(req.CID) > MaxCIDBytes || len(req.Avatar) > MaxAvatarBytes || len(req.Event) > MaxEventBytes ||
		len(req.MsgID) > MaxMsgIDBytes || utf8.RuneCountInString(req.Nickname) > MaxNicknameRunes {
		t.Fatalf("field over its limit: %+v", req)
	}
	switch req.Method {
	case MethodSendMsg:
		if req.UID == "" || req.Msg == "" {
			t.Fatalf("sendmsg without uid or msg: %+v", req)
		}
	case MethodDelMsg:
		if req.MsgID == "" {
			t.Fatalf("delmsg without msgid: %+v", req)
		}
	case MethodConn:
	case MethodSystemAdmin:
		if req.Msg == "" || !validMsgIDLiteral(req.MsgID) || !json.Valid([]byte(req.MsgID)) {
			t.Fatalf("systemadmin without content or with bad msgid: %+v", req)
		}
	case MethodRead:
		if req.UID == "" || req.MsgID == "" {
			t.Fatalf("read without uid or msgid: %+v", req)
		}
	case MethodTyping:
		if req.UID == "" {
			t.Fatalf("typing without uid: %+v", req)
		}
	case MethodEditMsg:
		if req.UID == "" || req.MsgID == "" || req.Msg == "" {
			t.Fatalf("editmsg without uid, msgid or msg: %+v", req)
		}
	default:
		t.Fatalf("accepted with method %d", req.Method)
	}
	if req.Method != MethodSystemAdmin && req.MsgType != 0 {
		t.Fatalf("msgtype set for %s", req.Method)
	}
}

// requestMessages returns the inbox messages a broker would store for req.
func requestMessages(req Request) []inbox.Message {
	switch req.Method {
	case MethodSendMsg:
		return []inbox.Message{
			{Kind: inbox.KindDirect, ID: "m", Peer: "sender", Content: req.Msg, Extra: req.Extra},
			{Kind: inbox.KindSent, ID: "m", Peer: req.UID, Content: req.Msg, Extra: req.Extra, CID: req.CID},
		}
	case MethodDelMsg:
		return []inbox.Message{{Kind: inbox.KindDelete, Ref: req.MsgID}}
	case MethodSystemAdmin:
		return []inbox.Message{{Kind: inbox.KindNotice, Content: req.Msg, MsgType: req.MsgType, Ref: req.MsgID, Event: req.Event}}
	case MethodRead:
		return []inbox.Message{{Kind: inbox.KindReceipt, Peer: "reader", Ref: req.MsgID}}
	case MethodConn:
		return []inbox.Message{{Kind: inbox.KindDirect, Peer: req.UID, Nickname: req.Nickname, Avatar: req.Avatar, Content: "x"}}
	case MethodEditMsg:
		return []inbox.Message{{Kind: inbox.KindEdit, Peer: req.UID, Ref: req.MsgID, Content: req.Msg}}
	}
	return nil
}

func FuzzAppendEnvelope(f *testing.F) {
	f.Add(uint8(inbox.KindDirect), "0a1b", "10001", "张三", "https://x/a.png", "你好", "", "c-1", 0, "", "")
	f.Add(uint8(inbox.KindSent), "m", "007", "", "", "a\"\\\n\x00\xff\u2028", "{}", "c", 0, "", "")
	f.Add(uint8(inbox.KindNotice), "", "", "", "", "c", "", "", -1, "ev", `"a\"b"`)
	f.Add(uint8(inbox.KindNotice), "", "", "", "", "c", "", "", 1<<40, "", `1,"x":2`)
	f.Add(uint8(inbox.KindDelete), "", "", "", "", "", "", "", 0, "", "0a1b")
	f.Add(uint8(inbox.KindReceipt), "", "1234567890123456", "", "", "", "", "", 0, "", "m")
	f.Add(uint8(inbox.KindEdit), "", "007", "", "", "new\x00\xfftext", "", "", 0, "", "m")
	f.Add(uint8(inbox.KindReadSync), "", "bob", "", "", "", "", "", -3, "", "m")
	f.Add(uint8(9), "", "", "", "", "", "", "", 0, "", "")
	f.Fuzz(func(t *testing.T, kind uint8, id, peer, nickname, avatar, content, extra, cid string, msgType int, event, ref string) {
		m := inbox.Message{Kind: inbox.Kind(kind), ID: id, Peer: peer, Nickname: nickname, Avatar: avatar,
			Content: content, Extra: extra, CID: cid, MsgType: msgType, Event: event, Ref: ref}
		env, err := AppendEnvelope([]byte("x"), m)
		switch {
		case m.Kind < inbox.KindDirect || m.Kind > inbox.KindReadSync:
			if !errors.Is(err, ErrUnknownKind) {
				t.Fatalf("kind %d: error = %v", kind, err)
			}
		case m.Kind == inbox.KindNotice && ref != "" && !validMsgIDLiteral(ref):
			if !errors.Is(err, ErrBadMsgIDLiteral) {
				t.Fatalf("ref %q: error = %v", ref, err)
			}
		case err != nil:
			t.Fatalf("AppendEnvelope: %v", err)
		}
		if err != nil {
			if string(env) != "x" {
				t.Fatalf("dst changed on error: %q", env)
			}
			return
		}
		env = env[1:]
		if !json.Valid(env) {
			t.Fatalf("not valid JSON: %s", env)
		}
		var got map[string]any
		if err := json.Unmarshal(env, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"ct": content, "nickname": nickname, "avatar": avatar, "extra": extra, "cid": cid, "event": event}
		for k, v := range want {
			if g, ok := got[k]; ok && g != toValidUTF8(v) {
				t.Fatalf("%s = %q, want %q", k, g, toValidUTF8(v))
			}
		}
		for _, k := range []string{"uid", "to"} {
			if g, ok := got[k]; ok {
				if s, isString := g.(string); isString && s != toValidUTF8(peer) {
					t.Fatalf("%s = %q, want %q", k, s, peer)
				}
			}
		}

		// The string encoder agrees with encoding/json, byte for byte.
		for _, s := range []string{id, peer, nickname, content, ref} {
			if a, b := appendString(nil, s), encodeJSON(t, s); !bytes.Equal(a, b) {
				t.Fatalf("appendString(%q) = %s, encoding/json = %s", s, a, b)
			}
		}
		for _, out := range [][]byte{Logout(content), ErrorEnvelope(&Error{Code: id, Detail: content}, peer, cid)} {
			if !json.Valid(out) {
				t.Fatalf("not valid JSON: %s", out)
			}
		}
	})
}

// toValidUTF8 is what a string becomes through encoding/json: each invalid
// byte turns into U+FFFD.
func toValidUTF8(s string) string { return string([]rune(s)) }

// FuzzMsgIDLiteral checks the hand-written literal validator against
// encoding/json.
func FuzzMsgIDLiteral(f *testing.F) {
	for _, s := range []string{`0`, `-1.5E+3`, `"a\"b"`, `"\u00e9"`, `01`, `1.`, `"a`, `"\x"`, "\"\xff\"", ` 1`, `1,2`, `"a""b"`, `true`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, lit string) {
		want := len(lit) > 0 && len(lit) <= MaxMsgIDBytes &&
			(lit[0] == '"' || lit[0] == '-' || isDigit(lit[0])) &&
			!strings.ContainsAny(lit[len(lit)-1:], " \t\r\n") &&
			utf8.ValidString(lit) && json.Valid([]byte(lit))
		if got := validMsgIDLiteral(lit); got != want {
			t.Fatalf("validMsgIDLiteral(%q) = %v, json.Valid says %v", lit, got, want)
		}
	})
}

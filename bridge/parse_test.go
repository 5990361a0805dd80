package bridge

import (
	"errors"
	"github.com/inboxmq/inboxmq/acl"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	small := Limits{MaxContent: 10}
	tests := []struct {
		name    string
		topic   string
		payload string
		lim     Limits
		want    Request // checked when code is ""
		code    string
	}{
		// sendmsg: accepted
		{name: "sendmsg number uid", topic: TopicSendMsg,
			payload: `{"uid":10021,"msg":"你好","extra":"","cid":"c-1"}`,
			want:    Request{Method: MethodSendMsg, UID: "10021", Msg: "你好", CID: "c-1"}},
		{name: "sendmsg string uid", topic: TopicSendMsg,
			payload: `{"uid":"u_1.x-Y","msg":"hi","extra":"{\"k\":1}"}`,
			want:    Request{Method: MethodSendMsg, UID: "u_1.x-Y", Msg: "hi", Extra: `{"k":1}`}},
		{name: "sendmsg uid zero", topic: TopicSendMsg, payload: `{"uid":0,"msg":"x"}`,
			want: Request{Method: MethodSendMsg, UID: "0", Msg: "x"}},
		{name: "sendmsg leading zero string uid kept", topic: TopicSendMsg, payload: `{"uid":"007","msg":"x"}`,
			want: Request{Method: MethodSendMsg, UID: "007", Msg: "x"}},
		{name: "sendmsg uid beyond 2^53 kept exactly", topic: TopicSendMsg, payload: `{"uid":12345678901234567890123,"msg":"x"}`,
			want: Request{Method: MethodSendMsg, UID: "12345678901234567890123", Msg: "x"}},
		{name: "sendmsg 64-char uid", topic: TopicSendMsg, payload: `{"uid":"` + long(64) + `","msg":"x"}`,
			want: Request{Method: MethodSendMsg, UID: long(64), Msg: "x"}},
		{name: "sendmsg escapes decoded", topic: TopicSendMsg, payload: `{"uid":1,"msg":"\u4f60\n\"<>&\\"}`,
			want: Request{Method: MethodSendMsg, UID: "1", Msg: "你\n\"<>&\\"}},
		{name: "sendmsg lone surrogate escape becomes U+FFFD", topic: TopicSendMsg, payload: `{"uid":1,"msg":"\ud800"}`,
			want: Request{Method: MethodSendMsg, UID: "1", Msg: "\uFFFD"}},
		{name: "sendmsg spoofed sender fields ignored", topic: TopicSendMsg,
			payload: `{"uid":2,"msg":"x","nickname":"admin","avatar":"evil","from":1,"sender":{"uid":1},"msgtype":9}`,
			want:    Request{Method: MethodSendMsg, UID: "2", Msg: "x"}},
		{name: "sendmsg unknown fields of any shape ignored", topic: TopicSendMsg,
			payload: `{"uid":2,"msg":"x","a":[1,{"b":null}],"c":true,"d":1.5e300}`,
			want:    Request{Method: MethodSendMsg, UID: "2", Msg: "x"}},
		{name: "sendmsg null optional fields", topic: TopicSendMsg, payload: `{"uid":2,"msg":"x","extra":null,"cid":null}`,
			want: Request{Method: MethodSendMsg, UID: "2", Msg: "x"}},
		{name: "sendmsg whitespace around", topic: TopicSendMsg, payload: " \r\n\t{ \"uid\" : 2 , \"msg\" : \"x\" } \n",
			want: Request{Method: MethodSendMsg, UID: "2", Msg: "x"}},
		{name: "sendmsg duplicate key last wins", topic: TopicSendMsg, payload: `{"uid":1,"msg":"a","uid":2,"msg":"b"}`,
			want: Request{Method: MethodSendMsg, UID: "2", Msg: "b"}},
		{name: "sendmsg escaped key matches", topic: TopicSendMsg, payload: `{"u\u0069d":3,"msg":"x"}`,
			want: Request{Method: MethodSendMsg, UID: "3", Msg: "x"}},
		{name: "sendmsg matching _method_ any case", topic: TopicSendMsg, payload: `{"_method_":"sendMSG","uid":3,"msg":"x"}`,
			want: Request{Method: MethodSendMsg, UID: "3", Msg: "x"}},
		{name: "sendmsg null _method_ is absent", topic: TopicSendMsg, payload: `{"_method_":null,"uid":3,"msg":"x"}`,
			want: Request{Method: MethodSendMsg, UID: "3", Msg: "x"}},
		{name: "sendmsg msg at limit", topic: TopicSendMsg, lim: small, payload: `{"uid":3,"msg":"` + long(10) + `","extra":"` + long(10) + `"}`,
			want: Request{Method: MethodSendMsg, UID: "3", Msg: long(10), Extra: long(10)}},
		{name: "sendmsg cid at limit", topic: TopicSendMsg, payload: `{"uid":3,"msg":"x","cid":"` + long(128) + `"}`,
			want: Request{Method: MethodSendMsg, UID: "3", Msg: "x", CID: long(128)}},
		{name: "sendmsg whitespace-only msg is not empty", topic: TopicSendMsg, payload: `{"uid":3,"msg":" "}`,
			want: Request{Method: MethodSendMsg, UID: "3", Msg: " "}},

		// sendmsg: refused
		{name: "sendmsg uid fraction", topic: TopicSendMsg, payload: `{"uid":1.5,"msg":"x"}`, code: CodeBadUID},
		{name: "sendmsg uid negative", topic: TopicSendMsg, payload: `{"uid":-1,"msg":"x"}`, code: CodeBadUID},
		{name: "sendmsg uid negative zero", topic: TopicSendMsg, payload: `{"uid":-0,"msg":"x"}`, code: CodeBadUID},
		{name: "sendmsg uid exponent", topic: TopicSendMsg, payload: `{"uid":1e3,"msg":"x"}`, code: CodeBadUID},
		{name: "sendmsg uid empty string", topic: TopicSendMsg, payload: `{"uid":"","msg":"x"}`, code: CodeBadUID},
		{name: "sendmsg uid with space", topic: TopicSendMsg, payload: `{"uid":"a b","msg":"x"}`, code: CodeBadUID},
		{name: "sendmsg uid with slash", topic: TopicSendMsg, payload: `{"uid":"a/b","msg":"x"}`, code: CodeBadUID},
		{name: "sendmsg uid with wildcard", topic: TopicSendMsg, payload: `{"uid":"#","msg":"x"}`, code: CodeBadUID},
		{name: "sendmsg uid non-ascii", topic: TopicSendMsg, payload: `{"uid":"张三","msg":"x"}`, code: CodeBadUID},
		{name: "sendmsg uid NUL escape", topic: TopicSendMsg, payload: `{"uid":"a\u0000","msg":"x"}`, code: CodeBadUID},
		{name: "sendmsg uid 65 chars", topic: TopicSendMsg, payload: `{"uid":"` + long(65) + `","msg":"x"}`, code: CodeBadUID},
		{name: "sendmsg uid 65 digits", topic: TopicSendMsg, payload: `{"uid":` + strings.Repeat("1", 65) + `,"msg":"x"}`, code: CodeBadUID},
		{name: "sendmsg uid bool", topic: TopicSendMsg, payload: `{"uid":true,"msg":"x"}`, code: CodeBadField},
		{name: "sendmsg uid object", topic: TopicSendMsg, payload: `{"uid":{},"msg":"x"}`, code: CodeBadField},
		{name: "sendmsg uid array", topic: TopicSendMsg, payload: `{"uid":[1],"msg":"x"}`, code: CodeBadField},
		{name: "sendmsg uid missing", topic: TopicSendMsg, payload: `{"msg":"x"}`, code: CodeMissingField},
		{name: "sendmsg uid null", topic: TopicSendMsg, payload: `{"uid":null,"msg":"x"}`, code: CodeMissingField},
		{name: "sendmsg keys are case-sensitive", topic: TopicSendMsg, payload: `{"UID":1,"msg":"x"}`, code: CodeMissingField},
		{name: "sendmsg msg missing", topic: TopicSendMsg, payload: `{"uid":1}`, code: CodeMissingField},
		{name: "sendmsg msg null", topic: TopicSendMsg, payload: `{"uid":1,"msg":null}`, code: CodeMissingField},
		{name: "sendmsg msg empty", topic: TopicSendMsg, payload: `{"uid":1,"msg":""}`, code: CodeEmptyMessage},
		{name: "sendmsg msg number", topic: TopicSendMsg, payload: `{"uid":1,"msg":1}`, code: CodeBadField},
		{name: "sendmsg msg bool", topic: TopicSendMsg, payload: `{"uid":1,"msg":false}`, code: CodeBadField},
		{name: "sendmsg msg array", topic: TopicSendMsg, payload: `{"uid":1,"msg":["x"]}`, code: CodeBadField},
		{name: "sendmsg msg object", topic: TopicSendMsg, payload: `{"uid":1,"msg":{"toString":1}}`, code: CodeBadField},
		{name: "sendmsg msg over limit", topic: TopicSendMsg, lim: small, payload: `{"uid":1,"msg":"` + long(11) + `"}`, code: CodeTooLarge},
		{name: "sendmsg msg over default limit", topic: TopicSendMsg, payload: `{"uid":1,"msg":"` + long(DefaultMaxContent+1) + `"}`, code: CodeTooLarge},
		{name: "sendmsg extra number", topic: TopicSendMsg, payload: `{"uid":1,"msg":"x","extra":1}`, code: CodeBadField},
		{name: "sendmsg extra object", topic: TopicSendMsg, payload: `{"uid":1,"msg":"x","extra":{"a":1}}`, code: CodeBadField},
		{name: "sendmsg extra bool", topic: TopicSendMsg, payload: `{"uid":1,"msg":"x","extra":true}`, code: CodeBadField},
		{name: "sendmsg extra over limit", topic: TopicSendMsg, lim: small, payload: `{"uid":1,"msg":"x","extra":"` + long(11) + `"}`, code: CodeTooLarge},
		{name: "sendmsg cid number", topic: TopicSendMsg, payload: `{"uid":1,"msg":"x","cid":1}`, code: CodeBadField},
		{name: "sendmsg cid over limit", topic: TopicSendMsg, payload: `{"uid":1,"msg":"x","cid":"` + long(129) + `"}`, code: CodeTooLarge},
		{name: "sendmsg _method_ mismatch", topic: TopicSendMsg, payload: `{"_method_":"DelMsg","uid":1,"msg":"x"}`, code: CodeUnknownMethod},
		{name: "sendmsg _method_ unknown", topic: TopicSendMsg, payload: `{"_method_":"Eval","uid":1,"msg":"x"}`, code: CodeUnknownMethod},
		{name: "sendmsg _method_ empty", topic: TopicSendMsg, payload: `{"_method_":"","uid":1,"msg":"x"}`, code: CodeUnknownMethod},
		{name: "sendmsg _method_ number", topic: TopicSendMsg, payload: `{"_method_":1,"uid":1,"msg":"x"}`, code: CodeBadField},

		// payload shape
		{name: "invalid UTF-8 in value", topic: TopicSendMsg, payload: "{\"uid\":1,\"msg\":\"\xff\"}", code: CodeBadJSON},
		{name: "invalid UTF-8 in key", topic: TopicSendMsg, payload: "{\"uid\":1,\"msg\":\"x\",\"\xc3\":1}", code: CodeBadJSON},
		{name: "UTF-8 encoded surrogate", topic: TopicSendMsg, payload: "{\"uid\":1,\"msg\":\"\xed\xa0\x80\"}", code: CodeBadJSON},
		{name: "empty payload", topic: TopicSendMsg, payload: ``, code: CodeBadJSON},
		{name: "whitespace payload", topic: TopicSendMsg, payload: " \n", code: CodeBadJSON},
		{name: "null", topic: TopicSendMsg, payload: `null`, code: CodeBadJSON},
		{name: "array", topic: TopicSendMsg, payload: `[{"uid":1,"msg":"x"}]`, code: CodeBadJSON},
		{name: "string", topic: TopicSendMsg, payload: `"{}"`, code: CodeBadJSON},
		{name: "number", topic: TopicSendMsg, payload: `1`, code: CodeBadJSON},
		{name: "truncated", topic: TopicSendMsg, payload: `{"uid":1,"msg":"x"`, code: CodeBadJSON},
		{name: "trailing data", topic: TopicSendMsg, payload: `{"uid":1,"msg":"x"}{}`, code: CodeBadJSON},
		{name: "single quotes", topic: TopicSendMsg, payload: `{'uid':1,'msg':'x'}`, code: CodeBadJSON},
		{name: "javascript", topic: TopicSendMsg, payload: `{uid:1,msg:process.exit()}`, code: CodeBadJSON},
		{name: "raw control char in string", topic: TopicSendMsg, payload: "{\"uid\":1,\"msg\":\"a\x01\"}", code: CodeBadJSON},
		{name: "nested 10000-deep array", topic: TopicSendMsg,
			payload: strings.Repeat("[", 10000) + strings.Repeat("]", 10000), code: CodeBadJSON},
		{name: "nested 10000-deep array in unknown field", topic: TopicSendMsg,
			payload: `{"uid":1,"msg":"x","z":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, code: CodeBadJSON},
		{name: "payload over limit refused before decoding", topic: TopicSendMsg, lim: small,
			payload: strings.Repeat("x", 2*10+4096+1), code: CodeTooLarge},

		// topics and the generic topic
		{name: "unknown topic", topic: "im/eval", payload: `{}`, code: CodeUnknownTopic},
		{name: "topic case matters", topic: "IM/sendmsg", payload: `{"uid":1,"msg":"x"}`, code: CodeUnknownTopic},
		{name: "topic with suffix", topic: "im/sendmsg/x", payload: `{"uid":1,"msg":"x"}`, code: CodeUnknownTopic},
		{name: "empty topic", topic: "", payload: `{}`, code: CodeUnknownTopic},
		{name: "generic sendmsg", topic: TopicGeneric, payload: `{"_method_":"SendMsg","uid":1,"msg":"x"}`,
			want: Request{Method: MethodSendMsg, UID: "1", Msg: "x"}},
		{name: "generic delmsg lower case", topic: TopicGeneric, payload: `{"_method_":"delmsg","msgid":"m1"}`,
			want: Request{Method: MethodDelMsg, MsgID: "m1"}},
		{name: "generic conn upper case", topic: TopicGeneric, payload: `{"_method_":"CONN","nickname":"n"}`,
			want: Request{Method: MethodConn, Nickname: "n"}},
		{name: "generic systemadmin", topic: TopicGeneric, payload: `{"_method_":"SystemAdmin","content":"c"}`,
			want: Request{Method: MethodSystemAdmin, Msg: "c", MsgID: "0"}},
		{name: "generic read", topic: TopicGeneric, payload: `{"_method_":"Read","uid":"u","msgid":"m"}`,
			want: Request{Method: MethodRead, UID: "u", MsgID: "m"}},
		{name: "generic missing _method_", topic: TopicGeneric, payload: `{"uid":1,"msg":"x"}`, code: CodeMissingField},
		{name: "generic null _method_", topic: TopicGeneric, payload: `{"_method_":null,"uid":1,"msg":"x"}`, code: CodeMissingField},
		{name: "generic unknown _method_", topic: TopicGeneric, payload: `{"_method_":"MsgSent"}`, code: CodeUnknownMethod},
		{name: "generic _method_ with spaces", topic: TopicGeneric, payload: `{"_method_":" SendMsg"}`, code: CodeUnknownMethod},
		{name: "generic _method_ object", topic: TopicGeneric, payload: `{"_method_":{"name":"SendMsg"}}`, code: CodeBadField},
		{name: "generic sendmsg fields still checked", topic: TopicGeneric, payload: `{"_method_":"SendMsg","uid":1}`, code: CodeMissingField},

		// delmsg
		{name: "delmsg string msgid", topic: TopicDelMsg, payload: `{"uid":10021,"msgid":"0a1b"}`,
			want: Request{Method: MethodDelMsg, UID: "10021", MsgID: "0a1b"}},
		{name: "delmsg number msgid", topic: TopicDelMsg, payload: `{"msgid":1234567890123456789012}`,
			want: Request{Method: MethodDelMsg, MsgID: "1234567890123456789012"}},
		{name: "delmsg empty uid is absent", topic: TopicDelMsg, payload: `{"uid":"","msgid":"m"}`,
			want: Request{Method: MethodDelMsg, MsgID: "m"}},
		{name: "delmsg msgid missing", topic: TopicDelMsg, payload: `{"uid":1}`, code: CodeMissingField},
		{name: "delmsg msgid null", topic: TopicDelMsg, payload: `{"msgid":null}`, code: CodeMissingField},
		{name: "delmsg msgid empty", topic: TopicDelMsg, payload: `{"msgid":""}`, code: CodeBadField},
		{name: "delmsg msgid fraction", topic: TopicDelMsg, payload: `{"msgid":1.5}`, code: CodeBadField},
		{name: "delmsg msgid negative", topic: TopicDelMsg, payload: `{"msgid":-1}`, code: CodeBadField},
		{name: "delmsg msgid exponent", topic: TopicDelMsg, payload: `{"msgid":1e3}`, code: CodeBadField},
		{name: "delmsg msgid bool", topic: TopicDelMsg, payload: `{"msgid":true}`, code: CodeBadField},
		{name: "delmsg msgid array", topic: TopicDelMsg, payload: `{"msgid":["m"]}`, code: CodeBadField},
		{name: "delmsg msgid over limit", topic: TopicDelMsg, payload: `{"msgid":"` + long(129) + `"}`, code: CodeTooLarge},
		{name: "delmsg uid bad", topic: TopicDelMsg, payload: `{"uid":1.5,"msgid":"m"}`, code: CodeBadUID},
		{name: "delmsg uid bool", topic: TopicDelMsg, payload: `{"uid":false,"msgid":"m"}`, code: CodeBadField},

		// conn
		{name: "conn full", topic: TopicConn, payload: `{"uid":10001,"nickname":"张三","avatar":"https://x/a.png"}`,
			want: Request{Method: MethodConn, UID: "10001", Nickname: "张三", Avatar: "https://x/a.png"}},
		{name: "conn empty object", topic: TopicConn, payload: `{}`, want: Request{Method: MethodConn}},
		{name: "conn empty uid is absent", topic: TopicConn, payload: `{"uid":""}`, want: Request{Method: MethodConn}},
		{name: "conn nickname 64 runes", topic: TopicConn, payload: `{"nickname":"` + strings.Repeat("张", 64) + `"}`,
			want: Request{Method: MethodConn, Nickname: strings.Repeat("张", 64)}},
		{name: "conn nickname 65 runes", topic: TopicConn, payload: `{"nickname":"` + strings.Repeat("张", 65) + `"}`, code: CodeTooLarge},
		{name: "conn nickname number", topic: TopicConn, payload: `{"nickname":1}`, code: CodeBadField},
		{name: "conn avatar 1024 bytes", topic: TopicConn, payload: `{"avatar":"` + long(1024) + `"}`,
			want: Request{Method: MethodConn, Avatar: long(1024)}},
		{name: "conn avatar 1025 bytes", topic: TopicConn, payload: `{"avatar":"` + long(1025) + `"}`, code: CodeTooLarge},
		{name: "conn avatar array", topic: TopicConn, payload: `{"avatar":[]}`, code: CodeBadField},
		{name: "conn uid bad", topic: TopicConn, payload: `{"uid":"a b"}`, code: CodeBadUID},

		// systemadmin
		{name: "systemadmin full", topic: TopicSystemAdmin,
			payload: `{"uid":10021,"content":"hello","msgtype":3,"msgid":123,"event":"friend"}`,
			want:    Request{Method: MethodSystemAdmin, UID: "10021", Msg: "hello", MsgType: 3, MsgID: "123", Event: "friend"}},
		{name: "systemadmin defaults", topic: TopicSystemAdmin, payload: `{"content":"c"}`,
			want: Request{Method: MethodSystemAdmin, Msg: "c", MsgID: "0"}},
		{name: "systemadmin nulls", topic: TopicSystemAdmin, payload: `{"uid":null,"content":"c","msgtype":null,"msgid":null,"event":null}`,
			want: Request{Method: MethodSystemAdmin, Msg: "c", MsgID: "0"}},
		{name: "systemadmin empty uid is everyone", topic: TopicSystemAdmin, payload: `{"uid":"","content":"c","msgid":0}`,
			want: Request{Method: MethodSystemAdmin, Msg: "c", MsgID: "0"}},
		{name: "systemadmin string msgid kept raw", topic: TopicSystemAdmin, payload: `{"content":"c","msgid":"a\"<\u00e9"}`,
			want: Request{Method: MethodSystemAdmin, Msg: "c", MsgID: `"a\"<\u00e9"`}},
		{name: "systemadmin float msgid kept raw", topic: TopicSystemAdmin, payload: `{"content":"c","msgid":-1.5E+3}`,
			want: Request{Method: MethodSystemAdmin, Msg: "c", MsgID: "-1.5E+3"}},
		{name: "systemadmin negative msgtype", topic: TopicSystemAdmin, payload: `{"content":"c","msgtype":-2147483648}`,
			want: Request{Method: MethodSystemAdmin, Msg: "c", MsgType: -2147483648, MsgID: "0"}},
		{name: "systemadmin content missing", topic: TopicSystemAdmin, payload: `{"uid":1}`, code: CodeMissingField},
		{name: "systemadmin content empty", topic: TopicSystemAdmin, payload: `{"content":""}`, code: CodeEmptyMessage},
		{name: "systemadmin content number", topic: TopicSystemAdmin, payload: `{"content":1}`, code: CodeBadField},
		{name: "systemadmin content over limit", topic: TopicSystemAdmin, lim: small, payload: `{"content":"` + long(11) + `"}`, code: CodeTooLarge},
		{name: "systemadmin msgtype string", topic: TopicSystemAdmin, payload: `{"content":"c","msgtype":"0"}`, code: CodeBadField},
		{name: "systemadmin msgtype fraction", topic: TopicSystemAdmin, payload: `{"content":"c","msgtype":1.5}`, code: CodeBadField},
		{name: "systemadmin msgtype exponent", topic: TopicSystemAdmin, payload: `{"content":"c","msgtype":1e3}`, code: CodeBadField},
		{name: "systemadmin msgtype out of range", topic: TopicSystemAdmin, payload: `{"content":"c","msgtype":2147483648}`, code: CodeBadField},
		{name: "systemadmin msgtype bool", topic: TopicSystemAdmin, payload: `{"content":"c","msgtype":true}`, code: CodeBadField},
		{name: "systemadmin msgid bool", topic: TopicSystemAdmin, payload: `{"content":"c","msgid":true}`, code: CodeBadField},
		{name: "systemadmin msgid object", topic: TopicSystemAdmin, payload: `{"content":"c","msgid":{"a":1}}`, code: CodeBadField},
		{name: "systemadmin msgid array", topic: TopicSystemAdmin, payload: `{"content":"c","msgid":[1]}`, code: CodeBadField},
		{name: "systemadmin msgid over limit", topic: TopicSystemAdmin, payload: `{"content":"c","msgid":"` + long(127) + `"}`, code: CodeTooLarge},
		{name: "systemadmin event number", topic: TopicSystemAdmin, payload: `{"content":"c","event":1}`, code: CodeBadField},
		{name: "systemadmin event over limit", topic: TopicSystemAdmin, payload: `{"content":"c","event":"` + long(129) + `"}`, code: CodeTooLarge},
		{name: "systemadmin uid bad", topic: TopicSystemAdmin, payload: `{"uid":-1,"content":"c"}`, code: CodeBadUID},

		// read
		{name: "read", topic: TopicRead, payload: `{"uid":10021,"msgid":"m9"}`,
			want: Request{Method: MethodRead, UID: "10021", MsgID: "m9"}},
		{name: "read number msgid", topic: TopicRead, payload: `{"uid":"u","msgid":42}`,
			want: Request{Method: MethodRead, UID: "u", MsgID: "42"}},
		{name: "read uid missing", topic: TopicRead, payload: `{"msgid":"m"}`, code: CodeMissingField},
		{name: "read uid empty", topic: TopicRead, payload: `{"uid":"","msgid":"m"}`, code: CodeBadUID},
		{name: "read msgid missing", topic: TopicRead, payload: `{"uid":1}`, code: CodeMissingField},
		{name: "read msgid object", topic: TopicRead, payload: `{"uid":1,"msgid":{}}`, code: CodeBadField},
		{name: "read _method_ mismatch", topic: TopicRead, payload: `{"_method_":"SendMsg","uid":1,"msgid":"m"}`, code: CodeUnknownMethod},

		{name: "typing", topic: TopicTyping, payload: `{"uid":10021}`,
			want: Request{Method: MethodTyping, UID: "10021"}},
		{name: "generic typing", topic: TopicGeneric, payload: `{"_method_":"typing","uid":"bob"}`,
			want: Request{Method: MethodTyping, UID: "bob"}},
		{name: "typing uid missing", topic: TopicTyping, payload: `{}`, code: CodeMissingField},
		{name: "typing bad uid", topic: TopicTyping, payload: `{"uid":"a b"}`, code: CodeBadUID},
		{name: "typing uid negative", topic: TopicTyping, payload: `{"uid":-1}`, code: CodeBadUID},

		{name: "editmsg", topic: TopicEditMsg, payload: `{"uid":10021,"msgid":"m9","msg":"fixed","cid":"c"}`,
			want: Request{Method: MethodEditMsg, UID: "10021", MsgID: "m9", Msg: "fixed", CID: "c"}},
		{name: "generic editmsg, number msgid", topic: TopicGeneric, payload: `{"_method_":"EditMsg","uid":"u","msgid":42,"msg":"x"}`,
			want: Request{Method: MethodEditMsg, UID: "u", MsgID: "42", Msg: "x"}},
		{name: "editmsg uid missing", topic: TopicEditMsg, payload: `{"msgid":"m","msg":"x"}`, code: CodeMissingField},
		{name: "editmsg msgid missing", topic: TopicEditMsg, payload: `{"uid":1,"msg":"x"}`, code: CodeMissingField},
		{name: "editmsg msg missing", topic: TopicEditMsg, payload: `{"uid":1,"msgid":"m"}`, code: CodeMissingField},
		{name: "editmsg msg empty", topic: TopicEditMsg, payload: `{"uid":1,"msgid":"m","msg":""}`, code: CodeEmptyMessage},
		{name: "editmsg msg not a string", topic: TopicEditMsg, payload: `{"uid":1,"msgid":"m","msg":1}`, code: CodeBadField},
		{name: "editmsg msg over the limit", topic: TopicEditMsg, lim: small, payload: `{"uid":1,"msgid":"m","msg":"` + strings.Repeat("x", 17) + `"}`, code: CodeTooLarge},
		{name: "editmsg _method_ mismatch", topic: TopicEditMsg, payload: `{"_method_":"Typing","uid":1}`, code: CodeUnknownMethod},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.topic, []byte(tt.payload), tt.lim)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if got != tt.want {
					t.Fatalf("Parse =\n %+v\nwant\n %+v", got, tt.want)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse error = %v (%T), want *Error with code %s; request %+v", err, err, tt.code, got)
			}
			if e.Code != tt.code {
				t.Fatalf("Parse error = %v, want code %s", e, tt.code)
			}
			checkDetail(t, e, tt.payload)
			if got.UID != "" || got.Msg != "" || got.MsgID != "" || got.Extra != "" || got.Nickname != "" || got.Avatar != "" || got.Event != "" || got.MsgType != 0 {
				t.Fatalf("Parse returned fields beyond Method and CID on error: %+v", got)
			}
			seen[tt.code] = true
		})
	}
	for _, code := range []string{CodeBadJSON, CodeMissingField, CodeBadField, CodeBadUID, CodeEmptyMessage, CodeTooLarge, CodeUnknownMethod, CodeUnknownTopic} {
		if !seen[code] {
			t.Errorf("no table row reaches %s", code)
		}
	}
}

// checkDetail checks an error is safe to send back: it names something and
// does not repeat the payload or a long value from it.
func checkDetail(t *testing.T, e *Error, payload string) {
	t.Helper()
	if e.Detail == "" {
		t.Errorf("error %s has no detail", e.Code)
	}
	if len(e.Detail) > 200 {
		t.Errorf("detail is %d bytes: %q", len(e.Detail), e.Detail)
	}
	if len(payload) > maxEcho && strings.Contains(e.Detail, payload) {
		t.Errorf("detail echoes the payload: %q", e.Detail)
	}
}

func TestParseErrorKeepsMethodAndCID(t *testing.T) {
	tests := []struct {
		name    string
		topic   string
		payload string
		want    Request
	}{
		{name: "cid read before a bad uid", topic: TopicSendMsg, payload: `{"cid":"c-9","uid":"a b","msg":"x"}`,
			want: Request{Method: MethodSendMsg, CID: "c-9"}},
		{name: "method from generic topic", topic: TopicGeneric, payload: `{"_method_":"read","cid":"c","uid":1}`,
			want: Request{Method: MethodRead, CID: "c"}},
		{name: "bad cid is not kept", topic: TopicSendMsg, payload: `{"cid":7,"uid":1,"msg":"x"}`,
			want: Request{Method: MethodSendMsg}},
		{name: "unknown topic has no method", topic: "im/x", payload: `{"cid":"c"}`, want: Request{}},
		{name: "bad JSON has no cid", topic: TopicConn, payload: `{"cid":"c",}`, want: Request{Method: MethodConn}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.topic, []byte(tt.payload), Limits{})
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", got)
			}
			if got != tt.want {
				t.Fatalf("Parse on error = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseCIDOnEveryMethod(t *testing.T) {
	got, err := Parse(TopicConn, []byte(`{"cid":"c-2"}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got.CID != "c-2" {
		t.Fatalf("CID = %q, want c-2", got.CID)
	}
}

func TestParseDeepNestingIsFast(t *testing.T) {
	lim := Limits{MaxContent: 4 << 20}
	for _, depth := range []int{10_001, 1 << 20} {
		payload := `{"uid":1,"msg":"x","z":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
		start := time.Now()
		_, err := Parse(TopicSendMsg, []byte(payload), lim)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeBadJSON {
			t.Fatalf("depth %d: Parse error = %v, want %s", depth, err, CodeBadJSON)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("depth %d: Parse took %v", depth, d)
		}
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{name: "with detail", err: &Error{Code: CodeBadUID, Detail: "uid must be a number or string"}, want: "bridge: bad_uid: uid must be a number or string"},
		{name: "code only", err: &Error{Code: CodeForbidden}, want: "bridge: forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Fatalf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDetailClipsEchoedValues(t *testing.T) {
	tests := []struct {
		name    string
		topic   string
		payload string
	}{
		{name: "long topic", topic: "im/" + strings.Repeat("t", 500), payload: `{}`},
		{name: "long bad uid", topic: TopicSendMsg, payload: `{"uid":"` + strings.Repeat("张", 500) + `","msg":"x"}`},
		{name: "long unknown method", topic: TopicGeneric, payload: `{"_method_":"` + strings.Repeat("m", 500) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.topic, []byte(tt.payload), Limits{})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse error = %v, want *Error", err)
			}
			if len(e.Detail) > 120 {
				t.Fatalf("detail is %d bytes: %q", len(e.Detail), e.Detail)
			}
		})
	}
}

func TestMethodString(t *testing.T) {
	tests := []struct {
		m    Method
		want string
	}{
		{0, "unknown"},
		{MethodSendMsg, "SendMsg"},
		{MethodDelMsg, "DelMsg"},
		{MethodConn, "Conn"},
		{MethodSystemAdmin, "SystemAdmin"},
		{MethodRead, "Read"},
		{MethodTyping, "Typing"},
		{MethodEditMsg, "EditMsg"},
		{MethodEditMsg + 1, "unknown"},
		{255, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.m.String(); got != tt.want {
				t.Fatalf("Method(%d).String() = %q, want %q", tt.m, got, tt.want)
			}
		})
	}
}

func TestValidUID(t *testing.T) {
	tests := []struct {
		name string
		uid  string
		want bool
	}{
		{name: "digits", uid: "10021", want: true},
		{name: "all allowed classes", uid: "aZ09_.-", want: true},
		{name: "one char", uid: "x", want: true},
		{name: "64 chars", uid: strings.Repeat("a", 64), want: true},
		{name: "empty", uid: "", want: false},
		{name: "65 chars", uid: strings.Repeat("a", 65), want: false},
		{name: "space", uid: "a b", want: false},
		{name: "slash", uid: "a/b", want: false},
		{name: "plus wildcard", uid: "+", want: false},
		{name: "hash wildcard", uid: "#", want: false},
		{name: "dollar", uid: "$SYS", want: false},
		{name: "non-ascii", uid: "é", want: false},
		{name: "NUL", uid: "a\x00", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := acl.ValidUID(tt.uid); got != tt.want {
				t.Fatalf("acl.ValidUID(%q) = %v, want %v", tt.uid, got, tt.want)
			}
		})
	}
}

func TestLimitsMaxPayloadDoesNotOverflow(t *testing.T) {
	lim := Limits{MaxContent: int(^uint(0) >> 1)}
	if got := lim.maxPayload(); got <= 0 {
		t.Fatalf("maxPayload = %d", got)
	}
	if got := (Limits{}).maxPayload(); got != 2*DefaultMaxContent+4096 {
		t.Fatalf("default maxPayload = %d", got)
	}
}

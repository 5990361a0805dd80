package events

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseNotice(t *testing.T) {
	uids := func(n int) string {
		var b strings.Builder
		b.WriteByte('[')
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d", 10000+i)
		}
		b.WriteByte(']')
		return b.String()
	}
	long := strings.Repeat("x", MaxNoticeContent)
	tests := []struct {
		name    string
		payload string
		want    Notice
		wantErr string // substring of the error; "" for success
	}{
		{name: "legacy full", payload: `{"toWho":[10021,"10022"],"needStore":true,"content":"您的订单已发货","msgtype":2,"msgid":0,"event":"order"}`,
			want: Notice{UIDs: []string{"10021", "10022"}, NeedStore: true, Content: "您的订单已发货", MsgType: 2, MsgID: "0", Event: "order"}},
		{name: "everyone when toWho absent", payload: `{"content":"hi"}`,
			want: Notice{Content: "hi", MsgID: "0"}},
		{name: "everyone when toWho empty", payload: `{"toWho":[],"content":"hi"}`,
			want: Notice{Content: "hi", MsgID: "0"}},
		{name: "everyone when toWho null", payload: `{"toWho":null,"content":"hi"}`,
			want: Notice{Content: "hi", MsgID: "0"}},
		{name: "nulls are absent", payload: `{"toWho":null,"needStore":null,"content":"c","msgtype":null,"msgid":null,"event":null}`,
			want: Notice{Content: "c", MsgID: "0"}},
		{name: "string uids with every allowed char", payload: `{"toWho":["a_b.c-D9"],"content":"c"}`,
			want: Notice{UIDs: []string{"a_b.c-D9"}, Content: "c", MsgID: "0"}},
		{name: "duplicates dropped, order kept", payload: `{"toWho":[3,"1",3,"3",1],"content":"c"}`,
			want: Notice{UIDs: []string{"3", "1"}, Content: "c", MsgID: "0"}},
		{name: "uid beyond 2^53 kept exact", payload: `{"toWho":[123456789012345678901],"content":"c"}`,
			want: Notice{UIDs: []string{"123456789012345678901"}, Content: "c", MsgID: "0"}},
		{name: "uid zero", payload: `{"toWho":[0],"content":"c"}`,
			want: Notice{UIDs: []string{"0"}, Content: "c", MsgID: "0"}},
		{name: "string msgid kept raw", payload: `{"content":"c","msgid":"a\"b"}`,
			want: Notice{Content: "c", MsgID: `"a\"b"`}},
		{name: "float msgid kept raw", payload: `{"content":"c","msgid":-1.5e3}`,
			want: Notice{Content: "c", MsgID: "-1.5e3"}},
		{name: "msgtype int32 bounds", payload: `{"content":"c","msgtype":-2147483648}`,
			want: Notice{Content: "c", MsgType: -2147483648, MsgID: "0"}},
		{name: "unknown keys ignored", payload: `{"content":"c","_method_":"x","uid":"nope","extra":{"a":[1]}}`,
			want: Notice{Content: "c", MsgID: "0"}},
		{name: "last duplicate key wins", payload: `{"content":"a","content":"b"}`,
			want: Notice{Content: "b", MsgID: "0"}},
		{name: "surrounding space", payload: " \n{\"content\" : \"c\" , \"msgid\" : 7 }\n",
			want: Notice{Content: "c", MsgID: "7"}},
		{name: "content at the limit", payload: `{"content":"` + long + `"}`,
			want: Notice{Content: long, MsgID: "0"}},
		{name: "escaped content decoded", payload: `{"content":"\u4f60\n"}`,
			want: Notice{Content: "你\n", MsgID: "0"}},
		{name: "1000 uids", payload: `{"toWho":` + uids(MaxNoticeUIDs) + `,"content":"c"}`,
			want: Notice{UIDs: strings.Split(strings.Trim(uids(MaxNoticeUIDs), "[]"), ","), Content: "c", MsgID: "0"}},

		{name: "deny: empty payload", payload: ``, wantErr: "JSON object"},
		{name: "deny: not an object", payload: `["content"]`, wantErr: "JSON object"},
		{name: "deny: null", payload: `null`, wantErr: "JSON object"},
		{name: "deny: invalid JSON", payload: `{"content":"c"`, wantErr: "invalid JSON"},
		{name: "deny: trailing garbage", payload: `{"content":"c"} x`, wantErr: "invalid JSON"},
		{name: "deny: invalid UTF-8", payload: "{\"content\":\"\xff\"}", wantErr: "UTF-8"},
		{name: "deny: too large", payload: `{"content":"` + strings.Repeat("x", MaxNoticeBytes) + `"}`, wantErr: "exceeds"},
		{name: "deny: no content", payload: `{"toWho":[1]}`, wantErr: "content is required"},
		{name: "deny: empty content", payload: `{"content":""}`, wantErr: "must not be empty"},
		{name: "deny: content not a string", payload: `{"content":5}`, wantErr: "content must be a string"},
		{name: "deny: content over 64 KiB", payload: `{"content":"` + long + `x"}`, wantErr: "content exceeds"},
		{name: "deny: toWho a scalar", payload: `{"toWho":10021,"content":"c"}`, wantErr: "toWho must be an array"},
		{name: "deny: toWho an object", payload: `{"toWho":{"a":1},"content":"c"}`, wantErr: "toWho must be an array"},
		{name: "deny: toWho over 1000", payload: `{"toWho":` + uids(MaxNoticeUIDs+1) + `,"content":"c"}`, wantErr: "more than 1000"},
		{name: "deny: uid empty string", payload: `{"toWho":[""],"content":"c"}`, wantErr: "toWho[0]"},
		{name: "deny: uid with slash", payload: `{"toWho":["1","a/b"],"content":"c"}`, wantErr: "toWho[1]"},
		{name: "deny: uid with wildcard", payload: `{"toWho":["+"],"content":"c"}`, wantErr: "toWho[0]"},
		{name: "deny: uid too long", payload: `{"toWho":["` + strings.Repeat("a", 65) + `"],"content":"c"}`, wantErr: "toWho[0]"},
		{name: "deny: uid negative", payload: `{"toWho":[-1],"content":"c"}`, wantErr: "non-negative integer"},
		{name: "deny: uid fraction", payload: `{"toWho":[1.5],"content":"c"}`, wantErr: "non-negative integer"},
		{name: "deny: uid exponent", payload: `{"toWho":[1e3],"content":"c"}`, wantErr: "non-negative integer"},
		{name: "deny: uid null", payload: `{"toWho":[null],"content":"c"}`, wantErr: "toWho[0]"},
		{name: "deny: uid bool", payload: `{"toWho":[true],"content":"c"}`, wantErr: "toWho[0]"},
		{name: "deny: uid array", payload: `{"toWho":[[1]],"content":"c"}`, wantErr: "toWho[0]"},
		{name: "deny: needStore a number", payload: `{"needStore":1,"content":"c"}`, wantErr: "needStore"},
		{name: "deny: needStore a string", payload: `{"needStore":"true","content":"c"}`, wantErr: "needStore"},
		{name: "deny: msgtype a string", payload: `{"msgtype":"2","content":"c"}`, wantErr: "msgtype"},
		{name: "deny: msgtype fraction", payload: `{"msgtype":2.5,"content":"c"}`, wantErr: "msgtype"},
		{name: "deny: msgtype beyond int32", payload: `{"msgtype":2147483648,"content":"c"}`, wantErr: "msgtype"},
		{name: "deny: msgid object", payload: `{"msgid":{},"content":"c"}`, wantErr: "msgid"},
		{name: "deny: msgid bool", payload: `{"msgid":true,"content":"c"}`, wantErr: "msgid"},
		{name: "deny: msgid array", payload: `{"msgid":[1],"content":"c"}`, wantErr: "msgid"},
		{name: "deny: msgid too long", payload: `{"msgid":"` + strings.Repeat("1", 200) + `","content":"c"}`, wantErr: "msgid"},
		{name: "deny: event a number", payload: `{"event":1,"content":"c"}`, wantErr: "event must be a string"},
		{name: "deny: event too long", payload: `{"event":"` + strings.Repeat("e", 129) + `","content":"c"}`, wantErr: "event exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNotice([]byte(tt.payload))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseNotice = %+v, want error containing %q", got, tt.wantErr)
				}
				if !errors.Is(err, ErrBadNotice) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseNotice error = %v, want ErrBadNotice containing %q", err, tt.wantErr)
				}
				if len(err.Error()) > 300 {
					t.Errorf("error is %d bytes long; it must not echo the payload", len(err.Error()))
				}
				if !reflect.DeepEqual(got, Notice{}) {
					t.Errorf("on error ParseNotice returned %+v, want the zero Notice", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNotice: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseNotice =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

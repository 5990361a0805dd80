package legacy

import (
	"strings"
	"testing"
)

func TestParseField_Messages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		elem  string
		want  Entry // From, Content, Extra, Nickname, Time checked
		error string
	}{
		{"legacy object, seconds", `{"from":10001,"to":10021,"msg":"hi","nickname":"张三","time":1546300800}`,
			Entry{From: "10001", Content: "hi", Nickname: "张三", Time: 1546300800000}, ""},
		{"content key, ms string, object extra", `{"from":"10001","content":"x","time":"1546300800123","extra":{"a":1}}`,
			Entry{From: "10001", Content: "x", Extra: `{"a":1}`, Time: 1546300800123}, ""},
		{"date string", `{"from":"a.b","ct":"x","time":"2019-01-01 00:00:01"}`,
			Entry{From: "a.b", Content: "x", Time: 1546300801000}, ""},
		{"SendMsg envelope: uid is the sender", `{"_method_":"SendMsg","uid":10003,"ct":"x"}`,
			Entry{From: "10003", Content: "x"}, ""},
		{"a JSON string holding the object", `"{\"from\":10001,\"msg\":\"s\"}"`, Entry{From: "10001", Content: "s"}, ""},
		{"unreadable time is no time", `{"from":10001,"msg":"x","time":"yesterday"}`, Entry{From: "10001", Content: "x"}, ""},
		{"over-long nickname dropped", `{"from":10001,"msg":"x","nickname":"` + strings.Repeat("n", 65) + `"}`,
			Entry{From: "10001", Content: "x"}, ""},
		// deny rows
		{"no sender", `{"to":10021,"msg":"x"}`, Entry{}, "no sender (from)"},
		{"sender is a bad uid", `{"from":"a b","msg":"x"}`, Entry{}, "from is not a valid uid"},
		{"sender is the recipient", `{"from":10021,"msg":"x"}`, Entry{}, "sender is the recipient"},
		{"to someone else", `{"from":10001,"to":10099,"msg":"x"}`, Entry{}, "to is not the hash field"},
		{"no content", `{"from":10001,"msg":""}`, Entry{}, "no content"},
		{"content too large", `{"from":10001,"msg":"` + strings.Repeat("x", 101) + `"}`, Entry{}, "msg over 100 bytes"},
		{"not an object", `[1]`, Entry{}, "not a JSON object"},
		{"a number", `5`, Entry{}, "not a JSON object"},
		{"null", `null`, Entry{}, "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseField(KindMessage, "10021", []byte("["+tc.elem+"]"), 100)
			if err != nil || len(got) != 1 {
				t.Fatalf("ParseField: %v, %d entries", err, len(got))
			}
			e := got[0]
			if tc.error != "" {
				if e.Err == nil || !strings.Contains(e.Err.Error(), tc.error) {
					t.Fatalf("Err = %v, want %q", e.Err, tc.error)
				}
				return
			}
			if e.Err != nil {
				t.Fatalf("Err = %v", e.Err)
			}
			if e.From != tc.want.From || e.Content != tc.want.Content || e.Extra != tc.want.Extra ||
				e.Nickname != tc.want.Nickname || e.Time != tc.want.Time || e.UID != "10021" || e.ID == "" {
				t.Fatalf("entry = %+v, want %+v", e, tc.want)
			}
		})
	}
}

func TestParseField_Notices(t *testing.T) {
	got, err := ParseField(KindNotice, "10021", []byte(`[
		"{\"_method_\":\"SystemNot\",\"msgtype\":2,\"ct\":\"shipped\",\"msgid\":77,\"event\":\"order\"}",
		{"content":"obj","msgtype":"3"},
		"{\"content\":\"x\",\"msgtype\":\"two\"}",
		"{\"content\":\"x\",\"msgid\":{}}",
		"{\"msgtype\":1}",
		7
	]`), 0)
	if err != nil || len(got) != 6 {
		t.Fatalf("ParseField: %v, %d entries", err, len(got))
	}
	if e := got[0]; e.Err != nil || e.Content != "shipped" || e.MsgType != 2 || e.Ref != "77" || e.Event != "order" {
		t.Fatalf("notice 0 = %+v", e)
	}
	if e := got[1]; e.Err != nil || e.Content != "obj" || e.MsgType != 3 || e.Ref != "0" {
		t.Fatalf("notice 1 = %+v", e)
	}
	for i, want := range map[int]string{2: "msgtype", 3: "msgid", 4: "no content", 5: "not a JSON string or object"} {
		if got[i].Err == nil || !strings.Contains(got[i].Err.Error(), want) {
			t.Errorf("notice %d: Err = %v, want %q", i, got[i].Err, want)
		}
	}
}

func TestParseField_WholeField(t *testing.T) {
	for _, tc := range []struct{ name, uid, value, error string }{
		{"not JSON", "10021", `{x`, "not a JSON array"},
		{"an object", "10021", `{"from":1}`, "not a JSON array"},
		{"bad uid", "a b", `[]`, "field is not a valid uid"},
		{"empty uid", "", `[]`, "field is not a valid uid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseField(KindMessage, tc.uid, []byte(tc.value), 0); err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Fatalf("err = %v, want %q", err, tc.error)
			}
		})
	}
}

// Import ids: the same entry gives the same id wherever it stands, and
// two identical entries get two ids.
func TestParseField_IDs(t *testing.T) {
	a := `{"from":10001,"msg":"same","time":1}`
	b := `{"from":10001,"msg":"other","time":1}`
	first, _ := ParseField(KindMessage, "10021", []byte("["+a+","+a+","+b+"]"), 0)
	later, _ := ParseField(KindMessage, "10021", []byte("["+b+","+a+"]"), 0) // the legacy server dropped one
	if first[0].ID == first[1].ID {
		t.Fatal("two identical entries share an id")
	}
	if later[1].ID != first[0].ID || later[0].ID != first[2].ID {
		t.Fatalf("ids moved with the position: %s %s vs %s %s", later[1].ID, later[0].ID, first[0].ID, first[2].ID)
	}
	other, _ := ParseField(KindMessage, "10031", []byte("["+strings.Replace(a, "10001", "10021", 1)+"]"), 0)
	if other[0].ID == first[0].ID {
		t.Fatal("entries of two inboxes share an id")
	}
}

func TestFlaggedExtra(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `{"imported":{"id":"i","time":5}}`},
		{`{"k":1}`, `{"imported":{"id":"i","time":5},"k":1}`},
		{`plain text`, `plain text`},
		{`{"imported":true}`, `{"imported":true}`},
	} {
		if got := flaggedExtra(tc.in, 5, "i"); got != tc.want {
			t.Errorf("flaggedExtra(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func FuzzParseField(f *testing.F) {
	for _, s := range []string{`[]`, `[{"from":1,"msg":"x"}]`, `["{\"content\":\"x\"}"]`, `[null,1,"x",{}]`, `{`} {
		f.Add(uint8(1), s)
		f.Add(uint8(2), s)
	}
	f.Fuzz(func(t *testing.T, kind uint8, value string) {
		entries, err := ParseField(Kind(kind%2+1), "10021", []byte(value), 64)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Err == nil && (e.ID == "" || e.Content == "" || len(e.Content) > 64) {
				t.Fatalf("accepted a bad entry: %+v", e)
			}
		}
	})
}

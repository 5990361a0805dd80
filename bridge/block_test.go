package bridge

import "testing"

func TestParse_BlockAndUnblock(t *testing.T) {
	for _, tc := range []struct {
		name, topic, payload string
		method               Method
		uid, code            string
	}{
		{"block", TopicBlock, `{"uid":10021}`, MethodBlock, "10021", ""},
		{"unblock, string uid", TopicUnblock, `{"uid":"alice"}`, MethodUnblock, "alice", ""},
		{"generic topic", TopicGeneric, `{"_method_":"Block","uid":10021}`, MethodBlock, "10021", ""},
		{"generic, any case", TopicGeneric, `{"_method_":"unblock","uid":10021}`, MethodUnblock, "10021", ""},
		// deny rows
		{"no uid", TopicBlock, `{}`, MethodBlock, "", CodeMissingField},
		{"null uid", TopicUnblock, `{"uid":null}`, MethodUnblock, "", CodeMissingField},
		{"bad uid", TopicBlock, `{"uid":"a b"}`, MethodBlock, "", CodeBadUID},
		{"method of another topic", TopicBlock, `{"_method_":"Unblock","uid":1}`, MethodBlock, "", CodeUnknownMethod},
		{"not an object", TopicBlock, `[10021]`, MethodBlock, "", CodeBadJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := Parse(tc.topic, []byte(tc.payload), Limits{})
			if tc.code != "" {
				if e, ok := err.(*Error); !ok || e.Code != tc.code {
					t.Fatalf("Parse = %v, want code %s", err, tc.code)
				}
				return
			}
			if err != nil || req.Method != tc.method || req.UID != tc.uid {
				t.Fatalf("Parse = %+v, %v; want %v uid %s", req, err, tc.method, tc.uid)
			}
		})
	}
}

package bridge

import (
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

func BenchmarkParseSendMsg(b *testing.B) {
	payload := []byte(`{"uid":10021,"msg":"你好, this is a typical short chat message","extra":"","cid":"c-1"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := Parse(TopicSendMsg, payload, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendEnvelope_SendMsg(b *testing.B) {
	m := inbox.Message{Kind: inbox.KindDirect, ID: "01J9Z3K4QH7XGQ0000000000AB", Peer: "10001",
		Nickname: "张三", Avatar: "https://cdn.example.com/a/10001.png",
		Content: "你好, this is a typical short chat message", Extra: ""}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendEnvelope(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

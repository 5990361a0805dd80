package events_test

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/inboxmq/inboxmq/events"
)

// A back-end written in Go checks each webhook request like this before
// trusting its body.
func ExampleVerifySignature() {
	secret := []byte("the secret shared with inboxmq")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hooks/inboxmq", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		if !events.VerifySignature(secret, body, r.Header.Get(events.HeaderSignature)) {
			// 401 is final: inboxmq does not retry it.
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		// Dedupe retries on r.Header.Get(events.HeaderDelivery), then act
		// on the event named by r.Header.Get(events.HeaderEvent).
		w.WriteHeader(http.StatusNoContent)
	})

	body := []byte(`{"event":"login","time":1735689600123,"uid":"10021"}`)
	sig := events.Sign(secret, body)
	fmt.Println(events.VerifySignature(secret, body, sig))
	fmt.Println(events.VerifySignature(secret, append(body, ' '), sig))
	// Output:
	// true
	// false
}

func ExampleEvent_MarshalJSON() {
	e := events.Event{
		Type: events.TypePush,
		Time: time.UnixMilli(1735689600123),
		Data: map[string]any{"uid": "10021", "from": "10001", "msgid": "382697444573446144", "nickname": "张三", "preview": "你好", "unread": 3},
	}
	b, err := e.MarshalJSON()
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
	// Output:
	// {"event":"push","time":1735689600123,"from":"10001","msgid":"382697444573446144","nickname":"张三","preview":"你好","uid":"10021","unread":3}
}

func ExampleParseNotice() {
	n, err := events.ParseNotice([]byte(`{"toWho":[10021,"10022",10021],"needStore":true,"content":"您的订单已发货","msgtype":2}`))
	if err != nil {
		panic(err)
	}
	fmt.Printf("%q %v %q %d %s\n", n.UIDs, n.NeedStore, n.Content, n.MsgType, n.MsgID)

	_, err = events.ParseNotice([]byte(`{"toWho":["a/b"],"content":"hi"}`))
	fmt.Println(err)
	// Output:
	// ["10021" "10022"] true "您的订单已发货" 2 0
	// events: bad notice: toWho[0] "a/b" is not 1 to 64 of [A-Za-z0-9_.-]
}

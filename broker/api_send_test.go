package broker_test

import (
	"testing"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// The app's back-end sends a direct message as a user over HTTP (POST
// /api/v1/messages on the admin listener, with a service account): the
// recipient, connected over MQTT, receives it from that user with the msgid
// the answer named; a resend with the same cid is answered with the same
// msgid and delivered once; the send is in the log with the account's
// name; users cannot use the endpoint, and the public listener does not
// serve it.
func TestAPI_SendMessageAsUser(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Log.Level = "info"
	b, logs := mqtttest.StartLogged(t, cfg)
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	adminAPI := mqtttest.HTTP{Base: "http://" + b.AdminAddr()}
	service := mqtttest.Auth{User: mqtttest.ServiceName, Password: mqtttest.ServicePassword}
	body := map[string]any{"from": 10001, "uid": 10021, "msg": "your order shipped", "extra": "order:42", "cid": "order-42"}

	resp := adminAPI.Do(t, "POST", "/api/v1/messages", service, body)
	msgid := str(resp.Body["msgid"])
	if resp.Status != 200 || msgid == "" {
		t.Fatalf("send: %d %s", resp.Status, resp.Raw)
	}
	got := bob.Inbox.NextMethod(t, "SendMsg", wait)
	if got.Str("uid") != "10001" || got.Str("ct") != "your order shipped" || got.Str("extra") != "order:42" || got.Str("msgid") != msgid {
		t.Fatalf("bob received %s, want the message from 10001 with msgid %s", got.Raw, msgid)
	}
	logs.Wait(t, wait, "message sent for a user", "account="+mqtttest.ServiceName, "from=10001", "to=10021", "msgid="+msgid)

	// The resend is the same message, and is not delivered again: the
	// next message bob receives is the one sent after it.
	if again := adminAPI.Do(t, "POST", "/api/v1/messages", service, body); again.Status != 200 || str(again.Body["msgid"]) != msgid {
		t.Fatalf("resend: %d %s, want msgid %s", again.Status, again.Raw, msgid)
	}
	body["msg"], body["cid"] = "and another", "order-43"
	if next := adminAPI.Do(t, "POST", "/api/v1/messages", service, body); next.Status != 200 {
		t.Fatalf("second message: %d %s", next.Status, next.Raw)
	}
	if got := bob.Inbox.NextMethod(t, "SendMsg", wait); got.Str("ct") != "and another" {
		t.Fatalf("after the resend bob received %s, want the next message", got.Raw)
	}

	// The sender's history holds it as sent by 10001.
	hist := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}.Do(t, "GET", "/api/v1/conversations/10021/messages?limit=2", mqtttest.Auth{Token: mqtttest.Token(t, "10001")}, nil)
	if m := hist.List("messages"); len(m) != 2 || str(m[1]["msgid"]) != msgid || str(m[1]["from"]) != "10001" || str(m[1]["cid"]) != "order-42" {
		t.Fatalf("10001's history: %s", hist.Raw)
	}

	for _, tc := range []struct {
		name   string
		api    mqtttest.HTTP
		auth   mqtttest.Auth
		status int
	}{
		{"deny: a user token, as itself", adminAPI, mqtttest.Auth{Token: mqtttest.Token(t, "10001")}, 403},
		{"deny: no credentials", adminAPI, mqtttest.Auth{}, 401},
		{"deny: the public listener", mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}, service, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := tc.api.Do(t, "POST", "/api/v1/messages", tc.auth, map[string]any{"from": 10001, "uid": 10021, "msg": "forged"}); r.Status != tc.status {
				t.Fatalf("%d %s, want %d", r.Status, r.Raw, tc.status)
			}
		})
	}
	// Nothing refused reached bob: the next message is the next one sent.
	body["msg"], body["cid"] = "last", "order-44"
	adminAPI.Do(t, "POST", "/api/v1/messages", service, body)
	if got := bob.Inbox.NextMethod(t, "SendMsg", wait); got.Str("ct") != "last" {
		t.Fatalf("bob received %s, want \"last\"", got.Raw)
	}
}

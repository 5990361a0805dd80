package broker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// Operators use mosquitto_pub with a static account: one user, then everyone.
func TestAdminNotice_MosquittoPub(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	carol := mqtttest.MustV5(t, b.MQTTAddr(), "10031", mqtttest.Token(t, "10031"), mqtttest.V5Options{Subscribe: true})
	for _, c := range []interface{ Sub(string, byte) error }{bob} {
		if err := c.Sub("broadcast", 1); err != nil {
			t.Fatal(err)
		}
	}
	if code, err := carol.Sub("broadcast", 1); err != nil || code != 1 {
		t.Fatalf("carol broadcast sub: %#x %v", code, err)
	}

	sent := time.Now()
	out, err := mqtttest.MosquittoPub(b.MQTTAddr(), mqtttest.AdminName, mqtttest.AdminPassword, "im/systemadmin",
		`{"uid":10021,"content":"你的订单已发货","msgtype":2,"msgid":77,"event":"order"}`)
	if err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	n := bob.Inbox.Next(t, wait)
	// Byte for byte what legacy clients parse, then the broker's time.
	const legacy = `{"_method_":"SystemNot","action":"1","msgtype":2,"ct":"你的订单已发货","msgid":77,"event":"order","ts":`
	if !strings.HasPrefix(string(n.Raw), legacy) {
		t.Fatalf("targeted notice = %s", n.Raw)
	}
	checkServerTime(t, n.Raw, sent)
	if n.Topic != "inbox/10021" {
		t.Fatalf("targeted notice on %s", n.Topic)
	}

	out, err = mqtttest.MosquittoPub(b.MQTTAddr(), mqtttest.ServiceName, mqtttest.ServicePassword, "im/systemadmin",
		`{"content":"maintenance at 02:00","msgtype":1}`)
	if err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	for _, in := range []*mqtttest.Inbox{bob.Inbox, carol.Inbox} {
		e := in.Next(t, wait)
		if e.Topic != "broadcast" || e.Method() != "SystemNot" || e.Str("ct") != "maintenance at 02:00" || e.Str("msgtype") != "1" {
			t.Fatalf("broadcast = %s on %s", e.Raw, e.Topic)
		}
	}
}

package broker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// Expired sessions leave no subscriptions behind in the topic index
// (mochi v2.7.9 keeps them; found by the soak test).
func TestExpiredSessionsLeaveNoSubscriptions(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.MQTT.SysTopicInterval = time.Second
	b := mqtttest.Start(t, cfg)
	admin := mqtttest.MustV3(t, b.MQTTAddr(), mqtttest.AdminName, mqtttest.AdminPassword, mqtttest.V3Options{Clean: true, ClientID: "ops"})
	if err := admin.Sub("$SYS/broker/subscriptions", 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		c := mqtttest.MustV5(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"),
			mqtttest.V5Options{ClientID: fmt.Sprint("browser-", i), SessionExpiry: 1, Subscribe: true})
		c.Close()
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		admin.Inbox.Drain()
		if e := admin.Inbox.Next(t, 5*time.Second); string(e.Raw) == "1" {
			return // only the admin's own subscription is left
		} else if time.Now().After(deadline) {
			t.Fatalf("$SYS/broker/subscriptions = %s after every session expired, want 1", e.Raw)
		}
	}
}

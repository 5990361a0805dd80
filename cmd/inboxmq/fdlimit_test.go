package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// Running out of file descriptors once (a connection flood) must not stop
// the MQTT listener for good: mochi ends a listener on any Accept error.
func TestBinary_ListenerSurvivesFDExhaustion(t *testing.T) {
	wrapper := filepath.Join(t.TempDir(), "inboxmq-64fds")
	script := "#!/bin/sh\nulimit -n 64\nexec " + mqtttest.PlainBinary(t) + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	p := mqtttest.StartBinary(t, wrapper, mqtttest.WriteConfig(t, t.TempDir()))
	var conns []net.Conn
	for i := 0; i < 100; i++ {
		c, err := net.DialTimeout("tcp", p.MQTTAddr, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	time.Sleep(500 * time.Millisecond)
	for _, c := range conns {
		c.Close()
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := mqtttest.ConnectV3(p.MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
		if err == nil {
			c.Disconnect(0)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after running out of fds once, the broker accepts no connection: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// GET /api/v1/online counts a user's connections on every node sharing
// the Redis, whichever node's admin listener is asked: two real nodes,
// one real redis-server, devices of one user on both.
func TestCluster_OnlineCountsEveryNode(t *testing.T) {
	r := redistest.Start(t, redistest.Config{})
	var nodes []*mqtttest.Process
	for i := 1; i <= 2; i++ {
		cfg := mqtttest.WriteConfig(t, t.TempDir(),
			fmt.Sprintf("node_id: %d", i),
			"store: redis",
			fmt.Sprintf("redis: {addresses: [%q], prefix: \"t:\"}", r.Addr),
			"inbox: {single_login: false}") // one user, a device on each node
		nodes = append(nodes, mqtttest.StartProcess(t, cfg))
	}
	const uid = "10001"
	// online polls every node's admin API until each answers devices, and
	// fails the test when one keeps answering something else.
	online := func(devices int, nodes ...*mqtttest.Process) {
		t.Helper()
		for i, p := range nodes {
			deadline := time.Now().Add(10 * time.Second)
			for {
				got, err := onlineDevices(p.Admin, uid)
				if err == nil && got == devices {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node %d answers %d devices (%v), want %d", i+1, got, err, devices)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	online(0, nodes...)

	phone := mqtttest.MustV3(t, nodes[0].MQTTAddr, uid, mqtttest.Token(t, uid), mqtttest.V3Options{ClientID: "phone", Subscribe: true})
	mqtttest.MustV3(t, nodes[1].MQTTAddr, uid, mqtttest.Token(t, uid), mqtttest.V3Options{ClientID: "laptop", Subscribe: true})
	online(2, nodes...)

	phone.Disconnect(250)
	online(1, nodes...)

	// A node that shuts down takes its connections out of the count at once.
	if code := nodes[1].Stop(t, 10*time.Second); code != 0 {
		t.Fatalf("node 2 exited with %d:\n%s", code, nodes[1].Log())
	}
	online(0, nodes[0])
}

// onlineDevices asks an admin listener how many devices uid has online.
func onlineDevices(admin, uid string) (int, error) {
	req, err := http.NewRequest("GET", "http://"+admin+"/api/v1/online?uid="+uid, nil)
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth(mqtttest.AdminName, mqtttest.AdminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		UID     string `json:"uid"`
		Online  bool   `json:"online"`
		Devices int    `json:"devices"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("status %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || body.UID != uid || body.Online != (body.Devices > 0) {
		return 0, fmt.Errorf("status %s, body %+v", resp.Status, body)
	}
	return body.Devices, nil
}

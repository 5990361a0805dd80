package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
	redisstore "github.com/inboxmq/inboxmq/inbox/redis"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// Several inboxmq nodes on one Redis, real processes on loopback.

// startNodes runs n nodes sharing redisAddrs (cluster: a Redis Cluster).
func startNodes(t *testing.T, n int, redisAddrs []string, cluster bool) ([]*mqtttest.Process, []string) {
	t.Helper()
	addrs := `["` + strings.Join(redisAddrs, `","`) + `"]`
	var procs []*mqtttest.Process
	var cfgs []string
	for i := 0; i < n; i++ {
		cfg := mqtttest.WriteConfig(t, t.TempDir(),
			fmt.Sprintf("node_id: %d", i+1),
			"store: redis",
			fmt.Sprintf("redis: {addresses: %s, cluster: %v, prefix: \"t:\"}", addrs, cluster))
		procs = append(procs, mqtttest.StartProcess(t, cfg))
		cfgs = append(cfgs, cfg)
	}
	return procs, cfgs
}

// A broadcast sent on one node costs each other node one read of the
// broadcast log, not one per subscriber there.
func TestCluster_BroadcastIsReadOncePerNode(t *testing.T) {
	r := redistest.Start(t, redistest.Config{})
	nodes, _ := startNodes(t, 2, []string{r.Addr}, false)
	const subscribers, wait = 40, 10 * time.Second
	var inboxes []*mqtttest.Inbox
	for i := range subscribers {
		uid := fmt.Sprint(20000 + i)
		c := mqtttest.MustV3(t, nodes[1].MQTTAddr, uid, mqtttest.Token(t, uid), mqtttest.V3Options{})
		if err := c.Sub("broadcast", 1); err != nil {
			t.Fatal(err)
		}
		inboxes = append(inboxes, c.Inbox)
	}
	admin := mqtttest.MustV3(t, nodes[0].MQTTAddr, mqtttest.AdminName, mqtttest.AdminPassword, mqtttest.V3Options{Clean: true})
	reads := func() int { // ZRANGE is the inbox read (Store.Read)
		t.Helper()
		n, err := redistest.CommandCalls(r.Addr, "zrange")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, text := range []string{"first", "second", "third"} {
		before := reads()
		admin.MustPub(t, "im/systemadmin", fmt.Sprintf(`{"content":%q}`, text))
		for i, in := range inboxes {
			if e := in.Next(t, wait); e.Topic != "broadcast" || e.Str("ct") != text {
				t.Fatalf("subscriber %d: want %q, got %s on %s", i, text, e.Raw, e.Topic)
			}
		}
		if n := reads() - before; n > 3 {
			t.Fatalf("broadcast %q: %d log reads for %d subscribers on the other node, want about 1", text, n, subscribers)
		}
	}
}

func TestCluster_CrossNodeChatBroadcastAndRoaming(t *testing.T) {
	r := redistest.Start(t, redistest.Config{AOF: true})
	nodes, _ := startNodes(t, 3, []string{r.Addr}, false)
	const wait = 10 * time.Second

	bob := mqtttest.MustV3(t, nodes[1].MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	if err := bob.Sub("broadcast", 1); err != nil {
		t.Fatal(err)
	}
	alice := mqtttest.MustV5(t, nodes[0].MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V5Options{Subscribe: true, SessionExpiry: 3600})

	// A message from node 1 to a user on node 2 arrives live, and back.
	if code, err := alice.Pub("im/sendmsg", `{"uid":10021,"msg":"across nodes"}`); err != nil || code != 0 {
		t.Fatal(code, err)
	}
	if e := bob.Inbox.Next(t, wait); e.Str("ct") != "across nodes" || e.Str("uid") != "10001" {
		t.Fatalf("got %s", e.Raw)
	}
	bob.MustPub(t, "im/sendmsg", `{"uid":10001,"msg":"and back"}`)
	if e := alice.Inbox.NextMethod(t, "SendMsg", wait); e.Str("ct") != "and back" {
		t.Fatalf("got %s", e.Raw)
	}

	// An admin broadcast on node 3 reaches subscribers on every node.
	if out, err := mqtttest.MosquittoPub(nodes[2].MQTTAddr, mqtttest.AdminName, mqtttest.AdminPassword, "im/systemadmin", `{"content":"to everyone"}`); err != nil {
		t.Fatal(out, err)
	}
	if e := bob.Inbox.NextMethod(t, "SystemNot", wait); e.Topic != "broadcast" || e.Str("ct") != "to everyone" {
		t.Fatalf("broadcast = %s on %s", e.Raw, e.Topic)
	}

	// Bob goes offline on node 2 and comes back on node 3: everything, in order.
	bob.Inbox.Drain()
	bob.Disconnect(250)
	for i := 0; i < 50; i++ {
		if code, err := alice.Pub("im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"m%d"}`, i)); err != nil || code != 0 {
			t.Fatal(code, err)
		}
	}
	bob3 := mqtttest.MustV3(t, nodes[2].MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	for i, e := range bob3.Inbox.Collect(t, 50, 30*time.Second) {
		if e.Str("ct") != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d: %s", i, e.Raw)
		}
	}

	// Single login holds across nodes: a login on node 1 logs out node 3's.
	bob1 := mqtttest.MustV5(t, nodes[0].MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V5Options{ClientID: "10021/tablet", Subscribe: true, SessionExpiry: 3600})
	if e := bob3.Inbox.NextMethod(t, "Logout", wait); e.Str("action") != "5" {
		t.Fatalf("logout = %s", e.Raw)
	}
	if code, err := alice.Pub("im/sendmsg", `{"uid":10021,"msg":"to the tablet"}`); err != nil || code != 0 {
		t.Fatal(code, err)
	}
	// (Messages the phone had not acknowledged when it was logged out come
	// first: QoS 1 redelivery.)
	for {
		if e := bob1.Inbox.NextMethod(t, "SendMsg", wait); e.Str("ct") == "to the tablet" {
			break
		}
	}
}

// Redis stopped: sends fail visibly (MQTT 5 0x80, no PUBACK for 3.1.1),
// /readyz is 503; Redis back: the nodes recover by themselves.
func TestCluster_RedisDownAndBack(t *testing.T) {
	r := redistest.Start(t, redistest.Config{AOF: true})
	nodes, _ := startNodes(t, 2, []string{r.Addr}, false)
	bob := mqtttest.MustV3(t, nodes[1].MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	alice := mqtttest.MustV5(t, nodes[0].MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V5Options{Subscribe: true})
	api := mqtttest.HTTP{Base: "http://" + nodes[0].HTTP}

	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	code, err := alice.Pub("im/sendmsg", `{"uid":10021,"msg":"while redis is down"}`)
	if err != nil || code != 0x80 {
		t.Fatalf("publish with Redis down: code %#x err %v, want 0x80", code, err)
	}
	if e := alice.Inbox.NextMethod(t, "Error", 10*time.Second); e.Str("code") != "internal" {
		t.Fatalf("error envelope = %s", e.Raw)
	}
	if resp := api.Do(t, "GET", "/readyz", mqtttest.Auth{}, nil); resp.Status != 503 {
		t.Fatalf("/readyz with Redis down: %d", resp.Status)
	}
	v3, err := mqtttest.ConnectV3(nodes[0].MQTTAddr, "10002", mqtttest.Token(t, "10002"), mqtttest.V3Options{Clean: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v3.Disconnect(0)
	tok := v3.Publish("im/sendmsg", 1, false, `{"uid":10021,"msg":"3.1.1 while down"}`)
	if tok.WaitTimeout(3*time.Second) && tok.Error() == nil {
		t.Fatal("3.1.1 publish was acknowledged while Redis was down")
	}
	// Not stored and no PUBACK: the connection is closed, so paho resends
	// the message when it reconnects (it never resends on a live one).
	for closeBy := time.Now().Add(5 * time.Second); v3.IsConnectionOpen(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(closeBy) {
			t.Fatal("3.1.1 connection left open after a request that could not be stored")
		}
	}

	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for api.Do(t, "GET", "/readyz", mqtttest.Auth{}, nil).Status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("node did not become ready again")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for {
		code, err = alice.Pub("im/sendmsg", `{"uid":10021,"msg":"after redis is back"}`)
		if err == nil && code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish after Redis returned: %#x %v", code, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for {
		e := bob.Inbox.Next(t, 30*time.Second)
		if e.Str("ct") == "after redis is back" {
			break
		}
		if e.Str("ct") == "while redis is down" {
			t.Fatalf("a refused message was delivered: %s", e.Raw)
		}
	}
	// 0x80 and a closed 3.1.1 connection mean "not stored": neither
	// request is in the recipient's inbox or in its sender's copies.
	store, err := redisstore.Open(context.Background(), redisstore.Options{
		Client: r.Client(t), Prefix: "t:", Inbox: inbox.Options{NodeID: 99}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, c := range []struct{ uid, text string }{
		{"10021", "while redis is down"}, {"10001", "while redis is down"},
		{"10021", "3.1.1 while down"}, {"10002", "3.1.1 while down"},
	} {
		if n := storeHolds(t, store, c.uid, c.text); n != 0 {
			t.Errorf("%s holds %d copies of %q, which was answered as not stored", c.uid, n, c.text)
		}
	}
	if n := storeHolds(t, store, "10021", "after redis is back"); n != 1 {
		t.Errorf("the request after Redis returned is stored %d times, want 1 (the check above shows nothing otherwise)", n)
	}
}

// A node killed with SIGKILL under load loses nothing it PUBACKed; its
// users reconnect to another node and get their messages.
func TestCluster_NodeKilledUnderLoad(t *testing.T) {
	r := redistest.Start(t, redistest.Config{AOF: true})
	nodes, _ := startNodes(t, 2, []string{r.Addr}, false)
	const senders, recipient = 4, "10021"
	tokR := mqtttest.Token(t, recipient)
	first, err := mqtttest.ConnectV3(nodes[1].MQTTAddr, recipient, tokR, mqtttest.V3Options{Subscribe: true})
	if err != nil {
		t.Fatal(err)
	}
	first.Disconnect(100)

	var mu sync.Mutex
	acked := map[string]bool{} // messages PUBACKed by node 1
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for s := 0; s < senders; s++ {
		uid := fmt.Sprint(20000 + s)
		c := mqtttest.MustV3(t, nodes[0].MQTTAddr, uid, mqtttest.Token(t, uid), mqtttest.V3Options{Clean: true})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				text := fmt.Sprintf("%s-%d", uid, i)
				tok := c.Publish("im/sendmsg", 1, false, fmt.Sprintf(`{"uid":%q,"msg":%q}`, recipient, text))
				if !tok.WaitTimeout(2*time.Second) || tok.Error() != nil {
					return // the node died
				}
				mu.Lock()
				acked[text] = true
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	nodes[0].Kill(t)
	close(stop)
	wg.Wait()
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n == 0 {
		t.Fatal("nothing was acknowledged before the kill")
	}

	got := map[string]int{}
	bob := mqtttest.MustV3(t, nodes[1].MQTTAddr, recipient, tokR, mqtttest.V3Options{Subscribe: true})
	deadline := time.Now().Add(60 * time.Second)
	for missing := n; missing > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages lost", missing, n)
		}
		e := bob.Inbox.Next(t, 30*time.Second)
		text := e.Str("ct")
		got[text]++
		if got[text] == 1 && acked[text] {
			missing--
		}
	}
	dups := 0
	for _, c := range got {
		dups += c - 1
	}
	t.Logf("node killed after %d acknowledged messages: 0 lost, %d duplicates", n, dups)
}

// The same on a 3-master Redis Cluster: keys spread over slots by {uid}.
func TestCluster_RedisCluster(t *testing.T) {
	rc := redistest.StartCluster(t, 3)
	nodes, _ := startNodes(t, 2, rc.Addrs(), true)
	bob := mqtttest.MustV3(t, nodes[1].MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	alice := mqtttest.MustV3(t, nodes[0].MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	for i := 0; i < 20; i++ {
		alice.MustPub(t, "im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"c%d"}`, i))
	}
	for i, e := range bob.Inbox.Collect(t, 20, 20*time.Second) {
		if e.Str("ct") != fmt.Sprintf("c%d", i) {
			t.Fatalf("message %d: %s", i, e.Raw)
		}
	}
	resp := mqtttest.HTTP{Base: "http://" + nodes[0].HTTP}.Do(t, "GET", "/api/v1/conversations/10021/messages", mqtttest.Auth{Token: mqtttest.Token(t, "10001")}, nil)
	if len(resp.List("messages")) != 20 {
		t.Fatalf("history on the cluster: %s", resp.Raw)
	}
}

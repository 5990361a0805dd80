package main

import (
	"fmt"
	"sync/atomic"
	"time"
)

// fanout: -users persistent sessions subscribe to "broadcast"; the admin
// publishes -notices notices in closed loop (im/systemadmin on inboxmq,
// "broadcast" itself on Mosquitto) and every subscriber must get each one.
func (b *bench) fanout(t *Target) (*Result, error) {
	o := b.o
	label := "fanout " + t.Kind
	tr := NewTracker(1, o.Users, o.MsgSize)
	ids := uids(userBase, o.Users)
	clients, err := b.connectUsers(t, label, ids, func(string) string { return "broadcast" }, tr.Handler, &tr.lost)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	user, pass := t.AdminLogin()
	admin, err := Connect(Dial{Addr: t.Addr, ClientID: "bench-admin", User: user, Password: pass, Lost: &tr.lost})
	if err != nil {
		return nil, err
	}
	defer admin.Close()

	cpu0, err := t.CPU()
	if err != nil {
		return nil, err
	}
	self0 := harnessCPU()
	var sent atomic.Int64
	expected := int64(o.Notices * o.Users)
	stop := b.progress(label, func() string {
		return fmt.Sprintf("notices %d of %d, deliveries %d of %d", sent.Load(), o.Notices, tr.Received(), expected)
	})
	start := time.Now()
	for k := 0; k < o.Notices; k++ {
		text := tr.Text(0, uint32(k))
		payload := append(append([]byte(`{"content":"`), text...), `"}`...)
		if err := admin.Publish(t.NoticeTopic(), payload); err != nil {
			tr.pubErrs.Add(1)
			break
		}
		tr.Acked(0, uint32(k), -1)
		sent.Add(1)
	}
	published := time.Since(start)
	complete := tr.WaitDelivered(tr.Expected(), o.Quiet, 5*time.Minute, nil)
	stop()
	cpu, self := cpuSince(t, cpu0), harnessCPU()-self0
	elapsed := tr.LastReceipt().Sub(start)
	if elapsed < published {
		elapsed = published
	}
	s := tr.Stats()

	r := &Result{Scenario: "fanout", Broker: t.Kind, Params: map[string]any{
		"subscribers": o.Users, "notices": o.Notices, "msg_size": o.MsgSize}}
	r.add("deliveries_per_s", "deliveries/s (first publish to last delivery)", "msg/s", "higher", float64(s.Received)/elapsed.Seconds())
	r.add("notices_per_s", "notices published/s (acked)", "msg/s", "higher", float64(s.Acked)/published.Seconds())
	r.add("elapsed_s", "first publish to last delivery", "s", "lower", elapsed.Seconds())
	r.addLatency(s)
	r.addDelivery(s)
	r.add("cpu_s", "broker CPU", "s", "lower", cpu.Seconds())
	r.add("harness_cpu_s", "harness (clients) CPU", "s", "", self.Seconds())
	if !complete {
		r.Notes = append(r.Notes, fmt.Sprintf("incomplete: %d of %d delivered (waited until %s without a message)",
			s.Received, s.Expected, o.Quiet))
	}
	return r, nil
}

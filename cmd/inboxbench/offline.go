package main

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// offline: every user opens its persistent session and leaves; -senders
// other connections queue -offline-msgs messages for each user (sender j
// serves the users u with u % senders == j, round by round, so every
// sender-recipient pair has an order); optionally the broker is killed
// with SIGKILL and restarted; then all users reconnect at once and the
// time until the last message arrives is measured.
func (b *bench) offline(t *Target, kill bool) (*Result, error) {
	o := b.o
	name := "offline"
	if kill {
		name = "offline-kill"
	}
	label := name + " " + t.Kind
	senders := min(o.Senders, o.Users)
	tr := NewTracker(senders, o.Users, o.MsgSize)
	ids := uids(userBase, o.Users)
	clients, err := b.connectUsers(t, label, ids, inboxTopic, tr.Handler, &tr.lost)
	if err != nil {
		return nil, err
	}
	closeAll(clients)

	sids := uids(senderBase, senders)
	senderClients := make([]Client, senders)
	err = parallel(senders, b.o.Parallel, func(j int) error {
		pass, err := t.Password(sids[j])
		if err != nil {
			return err
		}
		c, err := Connect(Dial{Addr: t.Addr, ClientID: sids[j], User: userName(t, sids[j]), Password: pass,
			V5: isV5(j, o.V5), Lost: &tr.lost})
		senderClients[j] = c
		return err
	})
	if err != nil {
		closeAll(senderClients)
		return nil, err
	}
	cpu0, err := t.CPU()
	if err != nil {
		return nil, err
	}
	var acked atomic.Int64
	total := int64(o.Users * o.Offline)
	stop := b.progress(label, func() string { return fmt.Sprintf("queued %d of %d", acked.Load(), total) })
	start := time.Now()
	err = parallel(senders, senders, func(j int) error {
		seq := uint32(0)
		for k := 0; k < o.Offline; k++ {
			for u := j; u < o.Users; u += senders {
				text := tr.Text(j, seq)
				if err := senderClients[j].Publish(t.DMTopic(ids[u]), request(ids[u], text, "c"+strconv.Itoa(int(seq)))); err != nil {
					tr.pubErrs.Add(1)
					return err
				}
				tr.Acked(j, seq, u)
				acked.Add(1)
				seq++
			}
		}
		return nil
	})
	queued := time.Since(start)
	stop()
	closeAll(senderClients)
	if err != nil {
		return nil, fmt.Errorf("queue messages: %w", err)
	}
	cpuQueue := cpuSince(t, cpu0)

	if kill {
		if err := t.Kill(); err != nil {
			return nil, err
		}
		if err := t.Restart(); err != nil {
			return nil, fmt.Errorf("restart after SIGKILL: %w", err)
		}
	}
	if cpu0, err = t.CPU(); err != nil {
		return nil, err
	}
	expected := tr.Expected()
	start = time.Now()
	clients, err = b.connectUsers(t, label+" reconnect", ids, inboxTopic, tr.Handler, &tr.lost)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	reconnected := time.Since(start)
	stop = b.progress(label+" drain", func() string { return fmt.Sprintf("received %d of %d", tr.Received(), expected) })
	complete := tr.WaitDelivered(expected, o.Quiet, 5*time.Minute, nil)
	stop()
	drain := reconnected
	if last := tr.LastReceipt().Sub(start); last > drain {
		drain = last
	}
	cpuDrain := cpuSince(t, cpu0)
	s := tr.Stats()

	r := &Result{Scenario: name, Broker: t.Kind, Params: map[string]any{
		"users": o.Users, "msgs_per_user": o.Offline, "senders": senders, "msg_size": o.MsgSize, "kill": kill}}
	r.add("queue_rate", "queueing rate (acked)", "msg/s", "higher", float64(s.Acked)/queued.Seconds())
	r.add("reconnect_s", "reconnect + subscribe all", "s", "lower", reconnected.Seconds())
	r.add("drain_s", "time to drain (reconnect to last message)", "s", "lower", drain.Seconds())
	r.add("drain_rate", "drain rate", "msg/s", "higher", float64(s.Received)/drain.Seconds())
	r.addDelivery(s)
	r.add("cpu_queue_s", "broker CPU, queueing", "s", "lower", cpuQueue.Seconds())
	r.add("cpu_drain_s", "broker CPU, drain", "s", "lower", cpuDrain.Seconds())
	if !complete {
		r.Notes = append(r.Notes, fmt.Sprintf("incomplete: %d of %d delivered (waited until %s without a message)",
			s.Received, s.Expected, o.Quiet))
	}
	if kill && t.Kind == Mosquitto {
		r.Notes = append(r.Notes, fmt.Sprintf("Mosquitto keeps queued messages in memory and snapshots them every %d s "+
			"and at clean shutdown: a SIGKILL loses everything since the last snapshot", MosquittoAutosave))
	}
	return r, nil
}

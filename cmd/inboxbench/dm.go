package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// dm: -senders of the -users send direct messages to random other users,
// in closed loop (next publish after the PUBACK) for -duration, or paced
// at -rate msg/s in total. Every user, senders included, receives on its
// own persistent session. On a Target with several nodes, every message
// goes to a random user on another node than its sender's.
func (b *bench) dm(t *Target, paced bool) (*Result, error) {
	o := b.o
	name := "dm-max"
	if paced {
		name = "dm-paced"
	}
	label := name + " " + t.Kind
	tr := NewTracker(o.Senders, o.Users, o.MsgSize)
	ids := uids(userBase, o.Users)
	clients, err := b.connectUsers(t, label, ids, inboxTopic, tr.Handler, &tr.lost)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)

	// others[n]: the users not on node n, the recipients of its senders
	// when the Target has several nodes.
	var others [][]int
	if t.Nodes() > 1 {
		others = make([][]int, t.Nodes())
		for i := range o.Users {
			for n := range others {
				if t.Node(i) != n {
					others[n] = append(others[n], i)
				}
			}
		}
	}

	cpu0, err := t.CPU()
	if err != nil {
		return nil, err
	}
	var redis0 redisSample
	if t.redis != nil {
		if redis0, err = t.redis.sample(); err != nil {
			return nil, err
		}
	}
	wal0, walOK, err := t.WALSyncs()
	if err != nil {
		return nil, err
	}
	self0 := harnessCPU()
	var acked, issued atomic.Int64
	limit := int64(o.Messages)
	if paced {
		limit = 0
	}
	stop := b.progress(label, func() string {
		return fmt.Sprintf("acked %d, received %d", acked.Load(), tr.Received())
	})
	var probe *stallProbe
	if paced {
		tr.slowOver = slowLatency
		probe = startStallProbe(time.Sleep, time.Now)
	}
	start := time.Now()
	deadline := start.Add(o.Duration)
	var interval time.Duration
	if paced {
		interval = time.Duration(float64(time.Second) * float64(o.Senders) / float64(o.Rate))
	}
	var wg sync.WaitGroup
	for j := 0; j < o.Senders; j++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			self := j * o.Users / o.Senders
			rnd := rand.New(rand.NewPCG(uint64(o.Seed), uint64(j)))
			next := start.Add(interval * time.Duration(j) / time.Duration(o.Senders)) // staggered
			for seq := uint32(0); ; seq++ {
				if paced {
					if next.After(deadline) {
						return
					}
					time.Sleep(time.Until(next)) // behind schedule: no sleep, catch up
					next = next.Add(interval)
				} else if limit > 0 {
					if issued.Add(1) > limit {
						return
					}
				} else if time.Now().After(deadline) {
					return
				}
				var to int
				if others != nil {
					mine := others[t.Node(self)]
					to = mine[rnd.IntN(len(mine))]
				} else if to = rnd.IntN(o.Users - 1); to >= self {
					to++
				}
				text := tr.Text(j, seq)
				if err := clients[self].Publish(t.DMTopic(ids[to]), request(ids[to], text, "c"+strconv.Itoa(int(seq)))); err != nil {
					tr.pubErrs.Add(1)
					return // a sender whose connection failed stops; the error is reported
				}
				tr.Acked(j, seq, to)
				acked.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	tr.WaitDelivered(acked.Load(), o.Quiet, 2*time.Minute, nil)
	stop()
	var stalls []stall
	var watched time.Duration
	if probe != nil {
		stalls, watched = probe.Stop()
	}
	cpu, self := cpuSince(t, cpu0), harnessCPU()-self0
	var redis1 redisSample
	var redisErr error
	if t.redis != nil {
		redis1, redisErr = t.redis.sample()
	}
	s := tr.Stats()

	r := &Result{Scenario: name, Broker: t.Kind, Params: map[string]any{
		"users": o.Users, "senders": o.Senders, "duration": o.Duration.String(), "msg_size": o.MsgSize}}
	if limit > 0 {
		r.Params["messages"] = limit
		delete(r.Params, "duration")
	}
	if paced {
		r.Params["rate"] = o.Rate
		r.add("rate", "achieved rate", "msg/s", "", float64(s.Acked)/elapsed.Seconds())
	} else {
		r.add("throughput", "throughput (acked)", "msg/s", "higher", float64(s.Acked)/elapsed.Seconds())
	}
	r.addLatency(s)
	if paced {
		r.addStalls(stalls, s.Slow, watched)
		if o.SlowLog != "" {
			if err := appendSlowLog(o.SlowLog, name, t.Kind, s.Slow, stalls); err != nil {
				return nil, err
			}
		}
	}
	r.addDelivery(s)
	r.add("cpu_s", "broker CPU", "s", "lower", cpu.Seconds())
	if s.Acked > 0 {
		r.add("cpu_us_per_msg", "broker CPU per message", "µs", "lower", float64(cpu.Microseconds())/float64(s.Acked))
	}
	r.add("harness_cpu_s", "harness (clients) CPU", "s", "", self.Seconds())
	if walOK && s.Acked > 0 {
		// The disk's share of the latency tail: the syncs every PUBACK
		// waited for (shared by the messages stored at once).
		wal1, ok, err := t.WALSyncs()
		if err != nil {
			return nil, err
		}
		if ok {
			n, p99 := wal1.since(wal0, 0.99)
			_, p50 := wal1.since(wal0, 0.5)
			r.add("wal_syncs_per_msg", "WAL syncs per message", "", "", n/float64(s.Acked))
			r.add("wal_sync_p50_ms", "WAL sync p50 (at most, bucket bound)", "ms", "", p50*1000)
			r.add("wal_sync_p99_ms", "WAL sync p99 (at most, bucket bound)", "ms", "", p99*1000)
		}
	}
	if t.Nodes() > 1 {
		r.Params["nodes"] = t.Nodes()
	}
	if t.redis != nil {
		if redisErr != nil {
			return r, redisErr
		}
		addRedis(r, redis0, redis1, s.Received)
	}
	return r, nil
}

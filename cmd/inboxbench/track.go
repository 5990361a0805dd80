package main

import (
	"bytes"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Every message text is "bench SENDER SEQ NANOS " padded with 'x': the
// sender's index, its own sequence number (increasing over all its
// messages) and the send time in nanoseconds since the tracker's base
// (monotonic, same process). The receiver finds it inside the inboxmq
// envelope ("ct") or the raw request (Mosquitto) without decoding JSON.
var marker = []byte("bench ")

// Envelope prefixes of inboxmq's copies to the sender, counted apart.
var sentCopy = []byte(`{"_method_":"MsgSent"`)

// Tracker checks a workload end to end: what was acknowledged, what was
// received, duplicates, order per sender-recipient pair and latency.
type Tracker struct {
	base    time.Time
	size    int
	rx      []*receiver
	acks    [][]ack      // per sender; appended only by that sender's goroutine
	unique  atomic.Int64 // distinct bench messages received
	last    atomic.Int64 // nanoseconds since base of the latest distinct receipt
	pubErrs atomic.Int64
	lost    atomic.Int64 // connections lost (not closed by the harness)
	// slowOver, when set, keeps every message that took at least this
	// long (Stats.Slow). Set it before the first message.
	slowOver time.Duration
}

// ack is one acknowledged publish: to is the receiver index, or -1 for a
// message every receiver must get (fan-out).
type ack struct {
	seq uint32
	to  int32
}

type receiver struct {
	mu     sync.Mutex
	last   []int64 // per sender: highest seq received, -1 for none
	seen   map[uint64]struct{}
	lat    []int64 // nanoseconds, publish to receipt
	slow   []slowMsg
	dups   int64
	order  int64
	copies int64 // inboxmq MsgSent copies
	other  int64 // anything else (Error, Logout envelopes)
	sample []byte
}

// NewTracker tracks senders publishing to receivers, with message texts of size bytes.
func NewTracker(senders, receivers, size int) *Tracker {
	t := &Tracker{base: time.Now(), size: size, rx: make([]*receiver, receivers), acks: make([][]ack, senders)}
	for i := range t.rx {
		last := make([]int64, senders)
		for j := range last {
			last[j] = -1
		}
		t.rx[i] = &receiver{last: last, seen: make(map[uint64]struct{})}
	}
	return t
}

// Text returns the message text for sender's message seq, stamped now.
func (t *Tracker) Text(sender int, seq uint32) []byte {
	b := make([]byte, 0, t.size)
	b = append(b, marker...)
	b = strconv.AppendInt(b, int64(sender), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(seq), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(time.Since(t.base)), 10)
	b = append(b, ' ')
	for len(b) < t.size {
		b = append(b, 'x')
	}
	return b
}

// Acked records that the broker acknowledged sender's message seq to
// receiver to (-1: every receiver). Only sender's goroutine may call it.
func (t *Tracker) Acked(sender int, seq uint32, to int) {
	t.acks[sender] = append(t.acks[sender], ack{seq: seq, to: int32(to)})
}

// Handler returns the message handler of receiver r.
func (t *Tracker) Handler(r int) func(topic string, payload []byte) {
	return func(_ string, payload []byte) { t.receive(r, payload) }
}

func (t *Tracker) receive(r int, payload []byte) {
	now := int64(time.Since(t.base))
	rx := t.rx[r]
	i := bytes.Index(payload, marker)
	if bytes.HasPrefix(payload, sentCopy) || i < 0 {
		rx.mu.Lock()
		if i >= 0 {
			rx.copies++
		} else {
			rx.other++
			if rx.sample == nil {
				rx.sample = slices.Clone(payload)
			}
		}
		rx.mu.Unlock()
		return
	}
	rest := payload[i+len(marker):]
	sender, rest := parseInt(rest)
	seq, rest := parseInt(rest)
	sent, _ := parseInt(rest)
	if sender < 0 || int(sender) >= len(rx.last) || seq < 0 || sent < 0 {
		rx.mu.Lock()
		rx.other++
		rx.mu.Unlock()
		return
	}
	key := uint64(sender)<<32 | uint64(seq)
	rx.mu.Lock()
	defer rx.mu.Unlock()
	if _, dup := rx.seen[key]; dup {
		rx.dups++
		return
	}
	rx.seen[key] = struct{}{}
	if seq < rx.last[sender] {
		rx.order++
	} else {
		rx.last[sender] = seq
	}
	rx.lat = append(rx.lat, now-sent)
	if t.slowOver > 0 && now-sent >= int64(t.slowOver) {
		rx.slow = append(rx.slow, slowMsg{Sent: t.base.Add(time.Duration(sent)), Latency: time.Duration(now - sent),
			Sender: int(sender), Recipient: r})
	}
	t.unique.Add(1)
	t.last.Store(now)
}

// parseInt reads a decimal number followed by one space; -1 when malformed.
func parseInt(b []byte) (int64, []byte) {
	var n int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int64(b[i]-'0')
	}
	if i == 0 || i >= len(b) || b[i] != ' ' {
		return -1, nil
	}
	return n, b[i+1:]
}

// Expected is the number of distinct deliveries the acknowledged messages owe.
func (t *Tracker) Expected() int64 {
	var n int64
	for _, acks := range t.acks {
		for _, a := range acks {
			if a.to < 0 {
				n += int64(len(t.rx))
			} else {
				n++
			}
		}
	}
	return n
}

// Received is the number of distinct messages received so far.
func (t *Tracker) Received() int64 { return t.unique.Load() }

// LastReceipt is when the latest distinct message arrived.
func (t *Tracker) LastReceipt() time.Time {
	return t.base.Add(time.Duration(t.last.Load()))
}

// WaitDelivered waits until expected distinct messages have arrived, or
// none has arrived for quiet, or hard has passed; it reports whether all
// arrived. progress, if set, is called about every 2 s.
func (t *Tracker) WaitDelivered(expected int64, quiet, hard time.Duration, progress func()) bool {
	start := time.Now()
	lastN, lastChange := t.Received(), start
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	nextProgress := start.Add(2 * time.Second)
	for now := range tick.C {
		n := t.Received()
		if n >= expected {
			return true
		}
		if n != lastN {
			lastN, lastChange = n, now
		}
		if now.Sub(lastChange) > quiet || now.Sub(start) > hard {
			return false
		}
		if progress != nil && now.After(nextProgress) {
			progress()
			nextProgress = now.Add(2 * time.Second)
		}
	}
	return false
}

// Stats summarise a tracked workload.
type Stats struct {
	Acked, Expected, Received int64 // publishes acked; deliveries owed; distinct deliveries
	Lost, Dups, Order         int64
	Copies, Other, PubErrs    int64
	ConnLost                  int64
	Sample                    string // first unexpected payload
	Latency                   []time.Duration
	Slow                      []slowMsg // with Tracker.slowOver: the slow messages, by send time
}

// Stats counts loss against what was acknowledged. Call it when the
// receivers are quiet.
func (t *Tracker) Stats() Stats {
	var s Stats
	for _, rx := range t.rx {
		rx.mu.Lock()
	}
	defer func() {
		for _, rx := range t.rx {
			rx.mu.Unlock()
		}
	}()
	for sender, acks := range t.acks {
		s.Acked += int64(len(acks))
		for _, a := range acks {
			key := uint64(sender)<<32 | uint64(a.seq)
			if a.to >= 0 {
				s.Expected++
				if _, ok := t.rx[a.to].seen[key]; !ok {
					s.Lost++
				}
				continue
			}
			for _, rx := range t.rx {
				s.Expected++
				if _, ok := rx.seen[key]; !ok {
					s.Lost++
				}
			}
		}
	}
	var lat []int64
	for _, rx := range t.rx {
		s.Received += int64(len(rx.seen))
		s.Dups += rx.dups
		s.Order += rx.order
		s.Copies += rx.copies
		s.Other += rx.other
		if s.Sample == "" && rx.sample != nil {
			s.Sample = string(rx.sample)
		}
		lat = append(lat, rx.lat...)
		s.Slow = append(s.Slow, rx.slow...)
	}
	slices.SortFunc(s.Slow, func(a, b slowMsg) int { return a.Sent.Compare(b.Sent) })
	slices.Sort(lat)
	s.Latency = make([]time.Duration, len(lat))
	for i, v := range lat {
		s.Latency[i] = time.Duration(v)
	}
	s.PubErrs = t.pubErrs.Load()
	s.ConnLost = t.lost.Load()
	return s
}

// Percentile of sorted durations, 0 when empty.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(sorted)))
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

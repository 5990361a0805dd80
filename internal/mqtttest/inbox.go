package mqtttest

import (
	"encoding/json"
	"testing"
	"time"
)

// Envelope is one message received on an inbox (or any) topic.
type Envelope struct {
	Topic  string
	Raw    []byte
	Fields map[string]any // the JSON object, numbers as json.Number
	Dup    bool
}

// Method is the envelope's _method_.
func (e Envelope) Method() string { s, _ := e.Fields["_method_"].(string); return s }

// Str returns a field as a string ("" when absent); numbers are given in their JSON form.
func (e Envelope) Str(key string) string {
	switch v := e.Fields[key].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

// Inbox collects received messages in arrival order.
type Inbox struct {
	ch chan Envelope
}

// NewInbox makes an inbox that holds up to 200,000 unread messages.
func NewInbox() *Inbox { return &Inbox{ch: make(chan Envelope, 200000)} }

// Add records one received message.
func (i *Inbox) Add(topic string, payload []byte, dup bool) {
	e := Envelope{Topic: topic, Raw: append([]byte(nil), payload...), Dup: dup}
	dec := json.NewDecoder(bytesReader(payload))
	dec.UseNumber()
	_ = dec.Decode(&e.Fields) // non-JSON payloads keep Fields nil
	i.ch <- e
}

// Next waits for the next message.
func (i *Inbox) Next(tb testing.TB, timeout time.Duration) Envelope {
	tb.Helper()
	select {
	case e := <-i.ch:
		return e
	case <-time.After(timeout):
		tb.Fatalf("no message within %s", timeout)
		return Envelope{}
	}
}

// Wait is Next for goroutines that must not fail the test: ok is false
// when nothing arrived within timeout.
func (i *Inbox) Wait(timeout time.Duration) (e Envelope, ok bool) {
	select {
	case e = <-i.ch:
		return e, true
	case <-time.After(timeout):
		return Envelope{}, false
	}
}

// NextMethod skips messages until one with the given _method_ arrives.
func (i *Inbox) NextMethod(tb testing.TB, method string, timeout time.Duration) Envelope {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-i.ch:
			if e.Method() == method {
				return e
			}
		case <-deadline:
			tb.Fatalf("no %s within %s", method, timeout)
			return Envelope{}
		}
	}
}

// Collect waits for n messages.
func (i *Inbox) Collect(tb testing.TB, n int, timeout time.Duration) []Envelope {
	tb.Helper()
	out := make([]Envelope, 0, n)
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case e := <-i.ch:
			out = append(out, e)
		case <-deadline:
			tb.Fatalf("got %d of %d messages within %s", len(out), n, timeout)
		}
	}
	return out
}

// None asserts that nothing arrives for d.
func (i *Inbox) None(tb testing.TB, d time.Duration) {
	tb.Helper()
	select {
	case e := <-i.ch:
		tb.Fatalf("unexpected message on %s: %s", e.Topic, e.Raw)
	case <-time.After(d):
	}
}

// Drain discards what has arrived so far.
func (i *Inbox) Drain() {
	for {
		select {
		case <-i.ch:
		default:
			return
		}
	}
}

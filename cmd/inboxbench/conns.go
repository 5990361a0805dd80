package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// idleKeepAlive is the keep-alive of idle connections; the harness pings
// at half of it while holding them.
const idleKeepAlive = 60 * time.Second

// conns: -conns connections open a persistent session (3.1.1, clean=false,
// client id = uid), subscribe to their inbox and stay idle for -hold,
// pinging every 30 s from the moment they are open, as a phone with a 60 s
// keep-alive does (the broker ends a connection silent for 90 s, which a
// slow opening phase would otherwise reach). The clients
// are minimal raw MQTT connections (no paho) so the harness itself fits
// under the same descriptor limit. The broker's VmRSS is read before
// opening them, after, and after the hold; then each connection must
// answer a PINGREQ. On inboxmq the Go runtime's figures (/metrics) are
// read at the same points, and once more after a forced GC at the end,
// which shows what is live and what is the runtime's slack.
func (b *bench) conns(t *Target) (*Result, error) {
	o := b.o
	label := "conns " + t.Kind
	ids := uids(idleBase, o.Conns)
	time.Sleep(time.Second) // let the fresh broker settle before the baseline
	rss0, err := t.RSS()
	if err != nil {
		return nil, err
	}
	var rt runtimeSamples
	if err := rt.baseline(t); err != nil {
		return nil, err
	}
	idle := &idleConns{}
	defer idle.closeAll()
	stopPings := idle.pingEvery(idleKeepAlive / 2)
	defer stopPings()
	var opened, failed atomic.Int64
	var (
		errMu    sync.Mutex
		firstErr error
	)
	stop := b.progress(label, func() string {
		return fmt.Sprintf("opened %d of %d (%d failed)", opened.Load(), o.Conns, failed.Load())
	})
	cpu0, err := t.CPU()
	if err != nil {
		return nil, err
	}
	self0 := harnessCPU()
	start := time.Now()
	// Failures are counted, not fatal: how many connections the broker
	// takes is what this scenario measures.
	if err := parallel(o.Conns, o.Parallel, func(i int) error {
		pass, err := t.Password(ids[i])
		if err != nil {
			return err // minting a token cannot fail for a valid uid
		}
		c, err := rawSession(t.Addr, ids[i], userName(t, ids[i]), pass)
		if err != nil {
			failed.Add(1)
			errMu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			errMu.Unlock()
			return nil
		}
		idle.add(c)
		opened.Add(1)
		return nil
	}); err != nil {
		stop()
		return nil, err
	}
	connectTime := time.Since(start)
	cpu, self := cpuSince(t, cpu0), harnessCPU()-self0
	stop()
	time.Sleep(time.Second)
	rss1, err := t.RSS()
	if err != nil {
		return nil, err
	}
	if err := rt.sample(t, &rt.opened); err != nil {
		return nil, err
	}

	stop = b.progress(label+" hold", func() string { return fmt.Sprintf("holding %d connections", opened.Load()) })
	time.Sleep(o.Hold)
	stop()
	pingFailures := stopPings()
	rss2, err := t.RSS()
	if err != nil {
		return nil, err
	}
	if err := rt.sample(t, &rt.held); err != nil {
		return nil, err
	}
	alive := idle.checkAlive()
	var rss3 int64
	if t.Kind == Inboxmq {
		if _, err := t.CollectGarbage(); err != nil {
			return nil, err
		}
		if rss3, err = t.RSS(); err != nil {
			return nil, err
		}
		if err := rt.sample(t, &rt.live); err != nil {
			return nil, err
		}
	}

	n := float64(opened.Load())
	peak := max(rss1, rss2)
	r := &Result{Scenario: "conns", Broker: t.Kind, Params: map[string]any{
		"conns": o.Conns, "hold": o.Hold.String(), "parallel": o.Parallel}}
	r.add("opened_target", "connections asked for", "", "", float64(o.Conns))
	r.add("opened", "connections opened", "", "", n)
	r.add("held", "connections alive after the hold", "", "", float64(alive))
	r.add("connect_rate", "connect rate (CONNECT+SUBSCRIBE)", "conn/s", "higher", n/connectTime.Seconds())
	if n > 0 {
		// On a shared machine the rate is bounded by whoever uses the
		// cores, so each side's CPU per connection is reported too.
		r.add("cpu_us_per_conn", "broker CPU per connection (CONNECT+SUBSCRIBE)", "µs", "lower", float64(cpu.Microseconds())/n)
		r.add("harness_cpu_us_per_conn", "harness (clients) CPU per connection", "µs", "", float64(self.Microseconds())/n)
	}
	r.add("rss_before_mib", "broker RSS before", "MiB", "lower", float64(rss0)/(1<<20))
	r.add("rss_after_mib", "broker RSS after opening", "MiB", "lower", float64(rss1)/(1<<20))
	r.add("rss_held_mib", "broker RSS after the hold", "MiB", "lower", float64(rss2)/(1<<20))
	if n > 0 {
		r.add("rss_per_conn_kb", "broker RSS per connection (peak - before)", "KB", "lower", float64(peak-rss0)/n/1000)
		r.add("rss_held_per_conn_kb", "broker RSS per connection after the hold", "KB", "lower", float64(rss2-rss0)/n/1000)
	}
	if t.Kind == Inboxmq && n > 0 {
		r.add("rss_gc_per_conn_kb", "broker RSS per connection after a forced GC", "KB", "", float64(rss3-rss0)/n/1000)
		rt.report(r, n)
	}
	if pingFailures > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d PINGREQs could not be written", pingFailures))
	}
	if firstErr != nil {
		r.Notes = append(r.Notes, fmt.Sprintf("%d connections failed; first: %v", failed.Load(), firstErr))
	}
	return r, nil
}

// rawSession connects with MQTT 3.1.1 CONNECT (clean=false) and
// subscribes to inbox/{clientID} at QoS 1.
func rawSession(addr, clientID, user, pass string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, opTimeout)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if err := c.SetDeadline(time.Now().Add(opTimeout)); err != nil {
		c.Close()
		return nil, fmt.Errorf("deadline: %w", err)
	}
	if _, err := c.Write(connectPacket(clientID, user, pass)); err != nil {
		c.Close()
		return nil, fmt.Errorf("CONNECT: %w", err)
	}
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("CONNACK refused: % x", ack)
	}
	if _, err := c.Write(subscribePacket(1, "inbox/"+clientID)); err != nil {
		c.Close()
		return nil, fmt.Errorf("SUBSCRIBE: %w", err)
	}
	var suback [5]byte
	if _, err := io.ReadFull(c, suback[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("SUBACK: %w", err)
	}
	if suback[0] != 0x90 || suback[4] >= 0x80 {
		c.Close()
		return nil, fmt.Errorf("SUBACK refused: % x", suback)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, fmt.Errorf("deadline: %w", err)
	}
	return c, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendRemaining(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func connectPacket(clientID, user, pass string) []byte {
	flags := byte(0) // clean session off: a persistent session
	body := appendString(nil, "MQTT")
	if user != "" {
		flags |= 0x80
	}
	if pass != "" {
		flags |= 0x40
	}
	body = append(body, 4, flags)
	body = binary.BigEndian.AppendUint16(body, uint16(idleKeepAlive/time.Second))
	body = appendString(body, clientID)
	if user != "" {
		body = appendString(body, user)
	}
	if pass != "" {
		body = appendString(body, pass)
	}
	return append(appendRemaining([]byte{0x10}, len(body)), body...)
}

func subscribePacket(id uint16, filter string) []byte {
	body := binary.BigEndian.AppendUint16(nil, id)
	body = appendString(body, filter)
	body = append(body, 1) // QoS 1
	return append(appendRemaining([]byte{0x82}, len(body)), body...)
}

var pingreq = []byte{0xc0, 0}

// idleConns are the open connections of the conns scenario and the
// PINGREQs each was sent; the PINGRESPs wait in the socket buffers until
// checkAlive reads them.
type idleConns struct {
	mu    sync.Mutex
	conns []*idleConn // guarded by mu; each one's pings only by the pinger
}

type idleConn struct {
	c     net.Conn
	pings int
}

func (s *idleConns) add(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns = append(s.conns, &idleConn{c: c})
}

func (s *idleConns) snapshot() []*idleConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[:len(s.conns):len(s.conns)]
}

func (s *idleConns) closeAll() {
	for _, c := range s.snapshot() {
		c.c.Close()
	}
}

// pingEvery sends PINGREQ on every open connection each interval until
// stop is called, which returns how many could not be written.
func (s *idleConns) pingEvery(interval time.Duration) (stop func() int) {
	var failed int
	stopTicks := every(interval, func() { failed += pingAll(s.snapshot()) })
	return func() int {
		stopTicks() // failed is not written after this
		return failed
	}
}

// pingAll sends PINGREQ on every connection and returns how many could
// not be sent.
func pingAll(conns []*idleConn) (failed int) {
	for _, c := range conns {
		if err := c.c.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
			failed++
			continue
		}
		if _, err := c.c.Write(pingreq); err != nil {
			failed++
			continue
		}
		c.pings++
	}
	return failed
}

// checkAlive sends one more PINGREQ on every connection and counts those
// that answer every ping they were sent within 30 s. Call it after the
// pinger has stopped.
func (s *idleConns) checkAlive() int {
	var alive atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, c := range s.snapshot() {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := c.c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
				return
			}
			if _, err := c.c.Write(pingreq); err != nil {
				return
			}
			want := 2 * (c.pings + 1)
			buf := make([]byte, want)
			if _, err := io.ReadFull(c.c, buf); err != nil {
				return
			}
			for i := 0; i < want; i += 2 {
				if buf[i] != 0xd0 || buf[i+1] != 0 {
					return
				}
			}
			alive.Add(1)
		}()
	}
	wg.Wait()
	return int(alive.Load())
}

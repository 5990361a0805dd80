package broker_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// The HTTP listener cannot be held or flooded by one address: connections
// over the per-address cap are closed at once, a request that never
// finishes its body is cut off, requests over the rate get 429, and
// Basic-auth guesses neither starve service logins nor wait in a queue.
func TestHTTPLimits(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Limits.HTTPConnectionsPerIP = 20
	cfg.Limits.HTTPRequestsPerIP = 20
	cfg.Limits.HTTPTimeout = time.Second
	b := mqtttest.Start(t, cfg)
	addr := b.HTTPAddr()

	t.Run("connections per address", func(t *testing.T) {
		var conns []net.Conn
		for range 20 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			conns = append(conns, c)
		}
		extra, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer extra.Close()
		_ = extra.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := extra.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("21st connection from one address: %v, want closed at once", err)
		}
		// The idle ones are cut off by the timeout, which frees the cap.
		for _, c := range conns {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("an idle connection stayed open: %v", err)
			}
		}
	})

	t.Run("a body that never comes", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /api/v1/notices/read HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nAuthorization: Bearer nope\r\n\r\n")
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, c)
		if took := time.Since(start); took > 4*time.Second {
			t.Fatalf("the connection stayed open %s", took)
		}
	})

	t.Run("request rate per address", func(t *testing.T) {
		time.Sleep(2 * time.Second) // a full bucket
		limited := 0
		for range 100 {
			resp, err := http.Get("http://" + addr + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests {
				limited++
			}
		}
		if limited < 40 {
			t.Fatalf("%d of 100 quick requests limited, want those over the burst of 40", limited)
		}
	})
}

// Basic-auth guesses in parallel do not hold a service's MQTT login up:
// when every bcrypt slot is taken, an HTTP login is answered 503 at once
// instead of queueing.
func TestHTTPBasicAuthFailsFastWhenBusy(t *testing.T) {
	cfg := mqtttest.Config(t)
	b := mqtttest.Start(t, cfg)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var mu sync.Mutex
	codes := map[int]int{}
	for range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", "http://"+b.HTTPAddr()+"/api/v1/unread", nil)
				req.SetBasicAuth("nosuchuser", "guess")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	svc := mqtttest.MustV3(t, b.MQTTAddr(), mqtttest.ServiceName, mqtttest.ServicePassword, mqtttest.V3Options{Clean: true})
	took := time.Since(start)
	close(stop)
	wg.Wait()
	svc.Disconnect(0)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("service login took %s during the flood; answers %v", took, codes)
	if codes[http.StatusServiceUnavailable] == 0 {
		t.Fatalf("no guess was answered 503 busy: %v", codes)
	}
	if codes[http.StatusUnauthorized] == 0 {
		t.Fatalf("no guess was refused 401: %v", codes)
	}
}

// A plain request on the WebSocket port (answered 404) does not keep its
// connection open past the connect timeout; neither does a request that
// never finishes its headers.
func TestWebSocketPortHoldsNoIdleConnections(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Limits.ConnectTimeout = time.Second
	b := mqtttest.Start(t, cfg)
	for _, req := range []string{"GET /x HTTP/1.1\r\nHost: x\r\n\r\n", "GET /mqtt HTTP/1.1\r\nHost: x\r\n"} {
		c, err := net.Dial("tcp", b.WebSocketAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.Copy(io.Discard, bufio.NewReader(c))
		if took := time.Since(start); err != nil || took > 3*time.Second {
			t.Fatalf("%q: connection open for %s (%v), want closed within the connect timeout", req, took, err)
		}
	}
}

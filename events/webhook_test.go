package events

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testSecret = "test-secret-0123456789abcdef0123"

// receiver is a real HTTP server standing in for the back-end: it checks
// every request's signature and headers the way a receiver must, refuses
// the first failFirst requests with failStatus, and records the rest.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret []byte

	failFirst  int
	failStatus int
	retryAfter string        // Retry-After on refusals, if set
	block      chan struct{} // when set, each request waits for it to close

	mu         sync.Mutex
	attempts   int
	badSig     int
	delivered  [][]byte
	headers    []http.Header
	deliveries []string // X-Inboxmq-Delivery of each attempt
}

func newReceiver(t *testing.T, r *receiver) *receiver {
	t.Helper()
	r.t = t
	if r.secret == nil {
		r.secret = []byte(testSecret)
	}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		if r.block != nil {
			select {
			case <-r.block:
			default:
				close(r.block)
			}
		}
		r.srv.Close()
	})
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	// The check the package doc tells receivers to make, written out
	// independently of VerifySignature.
	mac := hmac.New(sha256.New, r.secret)
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	sigOK := hmac.Equal([]byte(req.Header.Get(HeaderSignature)), []byte(want))

	r.mu.Lock()
	r.attempts++
	n := r.attempts
	r.deliveries = append(r.deliveries, req.Header.Get(HeaderDelivery))
	if !sigOK {
		r.badSig++
	}
	r.mu.Unlock()

	if r.block != nil {
		select {
		case <-r.block:
		case <-req.Context().Done():
			return
		}
	}
	if !sigOK {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if n <= r.failFirst {
		if r.retryAfter != "" {
			w.Header().Set("Retry-After", r.retryAfter)
		}
		http.Error(w, "not now", r.failStatus)
		return
	}
	r.mu.Lock()
	r.delivered = append(r.delivered, body)
	r.headers = append(r.headers, req.Header.Clone())
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) stats() (attempts, delivered, badSig int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts, len(r.delivered), r.badSig
}

func (r *receiver) sink(t *testing.T, o WebhookOptions) *WebhookSink {
	t.Helper()
	o.URL = r.srv.URL + "/hooks/inboxmq"
	if o.Secret == "" {
		o.Secret = string(r.secret)
	}
	if o.Log == nil {
		o.Log = quiet()
	}
	s, err := NewWebhookSink(o)
	if err != nil {
		t.Fatalf("NewWebhookSink: %v", err)
	}
	return s
}

func pushEvent(i int) Event {
	return Event{Type: TypePush, Time: time.UnixMilli(1735689600000 + int64(i)), Data: map[string]any{
		"uid": "10021", "msgid": strconv.Itoa(1000 + i), "from": "10001", "nickname": "张三", "preview": "你好<b>", "unread": i,
	}}
}

func TestWebhookSignedDelivery(t *testing.T) {
	r := newReceiver(t, &receiver{})
	s := r.sink(t, WebhookOptions{})
	before := time.Now().Unix()
	if err := s.Send(context.Background(), []Event{pushEvent(1), {Type: TypeLogin, Data: map[string]any{"uid": "10021"}}}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	attempts, delivered, badSig := r.stats()
	if attempts != 2 || delivered != 2 || badSig != 0 {
		t.Fatalf("attempts %d, delivered %d, bad signatures %d; want 2, 2, 0", attempts, delivered, badSig)
	}
	want := `{"event":"push","time":1735689600001,"from":"10001","msgid":"1001","nickname":"张三","preview":"你好<b>","uid":"10021","unread":1}`
	if got := string(r.delivered[0]); got != want {
		t.Errorf("body =\n%s\nwant\n%s", got, want)
	}
	h := r.headers[0]
	if got := h.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := h.Get(HeaderEvent); got != TypePush {
		t.Errorf("%s = %q, want push", HeaderEvent, got)
	}
	if got := r.headers[1].Get(HeaderEvent); got != TypeLogin {
		t.Errorf("second %s = %q, want login", HeaderEvent, got)
	}
	ts, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	if err != nil || ts < before || ts > time.Now().Unix() {
		t.Errorf("%s = %q, want the Unix time of sending", HeaderTimestamp, h.Get(HeaderTimestamp))
	}
	if d := h.Get(HeaderDelivery); len(d) != 32 || d == r.headers[1].Get(HeaderDelivery) {
		t.Errorf("delivery ids %q, %q: want 32 hex digits, distinct per event", d, r.headers[1].Get(HeaderDelivery))
	}
	var login map[string]any
	if err := json.Unmarshal(r.delivered[1], &login); err != nil || login["event"] != "login" || login["uid"] != "10021" {
		t.Errorf("login body %s (%v)", r.delivered[1], err)
	}

	// VerifySignature agrees with the receiver's check, and with nothing else.
	sig := h.Get(HeaderSignature)
	if !VerifySignature([]byte(testSecret), r.delivered[0], sig) {
		t.Error("VerifySignature refused a good signature")
	}
	for name, c := range map[string]struct {
		secret, body, sig string
	}{
		"tampered body": {testSecret, strings.Replace(want, "10021", "10022", 1), sig},
		"other secret":  {"other", want, sig},
		"no prefix":     {testSecret, want, strings.TrimPrefix(sig, "sha256=")},
		"not hex":       {testSecret, want, "sha256=zz"},
		"truncated":     {testSecret, want, sig[:len(sig)-2]},
		"empty":         {testSecret, want, ""},
	} {
		if VerifySignature([]byte(c.secret), []byte(c.body), c.sig) {
			t.Errorf("VerifySignature accepted %s", name)
		}
	}
}

func TestWebhookWrongSecretIsRefused(t *testing.T) {
	r := newReceiver(t, &receiver{})
	s := r.sink(t, WebhookOptions{Secret: "not-the-receivers-secret"})
	err := s.Send(context.Background(), []Event{pushEvent(1)})
	var se *SendError
	if !errors.As(err, &se) || se.Failed != 1 || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Send = %v, want a SendError with 1 failed, status 401", err)
	}
	if attempts, delivered, badSig := r.stats(); attempts != 1 || delivered != 0 || badSig != 1 {
		t.Errorf("attempts %d, delivered %d, bad signatures %d; want 1, 0, 1 (401 is not retried)", attempts, delivered, badSig)
	}
}

func TestWebhookRetries(t *testing.T) {
	tests := []struct {
		name         string
		failFirst    int
		status       int
		retries      int
		wantAttempts int
		wantErr      string // "" for success
	}{
		{name: "500 twice then accepted", failFirst: 2, status: 500, retries: 3, wantAttempts: 3},
		{name: "503 then accepted", failFirst: 1, status: 503, wantAttempts: 2},
		{name: "429 retried", failFirst: 1, status: 429, retries: 3, wantAttempts: 2},
		{name: "500 beyond the retries", failFirst: 100, status: 500, retries: 2, wantAttempts: 3, wantErr: "500"},
		{name: "no retries when negative", failFirst: 100, status: 500, retries: -1, wantAttempts: 1, wantErr: "500"},
		{name: "400 not retried", failFirst: 100, status: 400, retries: 3, wantAttempts: 1, wantErr: "400"},
		{name: "404 not retried", failFirst: 100, status: 404, retries: 3, wantAttempts: 1, wantErr: "404"},
		{name: "redirect not followed nor retried", failFirst: 100, status: 307, retries: 3, wantAttempts: 1, wantErr: "307"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReceiver(t, &receiver{failFirst: tt.failFirst, failStatus: tt.status})
			s := r.sink(t, WebhookOptions{Retries: tt.retries})
			err := s.Send(context.Background(), []Event{pushEvent(1)})
			attempts, delivered, badSig := r.stats()
			if attempts != tt.wantAttempts || badSig != 0 {
				t.Errorf("attempts %d (bad signatures %d), want %d", attempts, badSig, tt.wantAttempts)
			}
			if tt.wantErr == "" {
				if err != nil || delivered != 1 {
					t.Fatalf("Send = %v, delivered %d; want success, 1", err, delivered)
				}
			} else {
				var se *SendError
				if !errors.As(err, &se) || se.Failed != 1 || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Send = %v; want a SendError, 1 failed, mentioning %q", err, tt.wantErr)
				}
				if delivered != 0 {
					t.Errorf("delivered %d, want 0", delivered)
				}
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, d := range r.deliveries {
				if d != r.deliveries[0] {
					t.Errorf("delivery ids differ across retries: %q", r.deliveries)
					break
				}
			}
		})
	}
}

func TestWebhookRetryAfterIsHonoured(t *testing.T) {
	r := newReceiver(t, &receiver{failFirst: 1, failStatus: http.StatusTooManyRequests, retryAfter: "1"})
	s := r.sink(t, WebhookOptions{})
	start := time.Now()
	if err := s.Send(context.Background(), []Event{pushEvent(1)}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("retried after %v, want at least the 1 s Retry-After asked", took)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{"first retry", 0, 0, 100 * time.Millisecond, 200 * time.Millisecond},
		{"second retry", 1, 0, 200 * time.Millisecond, 400 * time.Millisecond},
		{"capped", 10, 0, 2500 * time.Millisecond, 5 * time.Second},
		{"huge attempt", 1000, 0, 2500 * time.Millisecond, 5 * time.Second},
		{"retry-after wins", 0, 3 * time.Second, 3 * time.Second, 3 * time.Second},
		{"retry-after capped", 0, time.Hour, 5 * time.Second, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 100 {
				if d := backoff(tt.attempt, tt.retryAfter); d < tt.lo || d > tt.hi {
					t.Fatalf("backoff(%d, %v) = %v, want within [%v, %v]", tt.attempt, tt.retryAfter, d, tt.lo, tt.hi)
				}
			}
		})
	}
}

// dropFirst closes the first n connections it accepts without a word, as
// a crashing load balancer would.
type dropFirst struct {
	net.Listener
	n atomic.Int32
}

func (l *dropFirst) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.n.Add(-1) < 0 {
			return c, err
		}
		if err := c.Close(); err != nil {
			return nil, err
		}
	}
}

func TestWebhookNetworkErrorsAreRetried(t *testing.T) {
	r := &receiver{t: t, secret: []byte(testSecret)}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	l := &dropFirst{Listener: r.srv.Listener}
	l.n.Store(2)
	r.srv.Listener = l
	r.srv.Start()
	t.Cleanup(r.srv.Close)

	s := r.sink(t, WebhookOptions{Retries: 3})
	if err := s.Send(context.Background(), []Event{pushEvent(1)}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if attempts, delivered, _ := r.stats(); attempts != 1 || delivered != 1 {
		t.Errorf("handler saw %d requests, %d delivered; want 1, 1", attempts, delivered)
	}
	if left := l.n.Load(); left >= 0 {
		t.Errorf("%d dropped connections left; the sink did not retry through them", left+1)
	}
}

func TestWebhookTimeout(t *testing.T) {
	r := newReceiver(t, &receiver{block: make(chan struct{})})
	s := r.sink(t, WebhookOptions{Timeout: 100 * time.Millisecond, Retries: 1})
	start := time.Now()
	err := s.Send(context.Background(), []Event{pushEvent(1)})
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("Send = %v, want a deadline error", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Send took %v with a 100 ms timeout and 1 retry", took)
	}
	if attempts, _, _ := r.stats(); attempts != 2 {
		t.Errorf("attempts %d, want 2 (a timeout is retried)", attempts)
	}
}

func TestWebhookSendStopsWhenCtxEnds(t *testing.T) {
	r := newReceiver(t, &receiver{block: make(chan struct{})})
	s := r.sink(t, WebhookOptions{Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Send(ctx, []Event{pushEvent(1), pushEvent(2), pushEvent(3)})
	var se *SendError
	if !errors.As(err, &se) || se.Failed != 3 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want a SendError with 3 failed wrapping the deadline", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Send took %v after its ctx ended", took)
	}
	if attempts, _, _ := r.stats(); attempts != 1 {
		t.Errorf("attempts %d, want 1: no request after ctx ended", attempts)
	}
}

func TestWebhookErrorsHideTheURLQuery(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := NewWebhookSink(WebhookOptions{URL: "http://" + addr + "/hook?token=hunter2", Secret: testSecret, Retries: -1, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), []Event{pushEvent(1)})
	if err == nil {
		t.Fatal("Send to a closed port succeeded")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the URL's query: %v", err)
	}
	if !strings.Contains(err.Error(), addr+"/hook") {
		t.Errorf("error %v does not say where it was sent", err)
	}
}

func TestNewWebhookSink(t *testing.T) {
	tests := []struct {
		name    string
		o       WebhookOptions
		wantErr string
	}{
		{name: "https", o: WebhookOptions{URL: "https://hooks.example.com/inboxmq", Secret: "s"}},
		{name: "http with port and query", o: WebhookOptions{URL: "http://127.0.0.1:8080/h?x=1", Secret: "s"}},
		{name: "deny: no secret", o: WebhookOptions{URL: "https://example.com/h"}, wantErr: "Secret is required"},
		{name: "deny: no URL", o: WebhookOptions{Secret: "s"}, wantErr: "http or https"},
		{name: "deny: ftp", o: WebhookOptions{URL: "ftp://example.com/h", Secret: "s"}, wantErr: "http or https"},
		{name: "deny: no scheme", o: WebhookOptions{URL: "example.com/h", Secret: "s"}, wantErr: "http or https"},
		{name: "deny: no host", o: WebhookOptions{URL: "http:///h", Secret: "s"}, wantErr: "no host"},
		{name: "deny: unparsable", o: WebhookOptions{URL: "http://[::1", Secret: "s"}, wantErr: "URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewWebhookSink(tt.o)
			if tt.wantErr == "" {
				if err != nil || s == nil || s.Name() != "webhook" {
					t.Fatalf("NewWebhookSink = %v, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewWebhookSink error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

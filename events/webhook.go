package events

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Webhook request headers.
const (
	HeaderEvent     = "X-Inboxmq-Event"     // the event's type
	HeaderSignature = "X-Inboxmq-Signature" // "sha256=" + hex HMAC-SHA256 of the body
	HeaderTimestamp = "X-Inboxmq-Timestamp" // Unix seconds when this attempt was sent
	HeaderDelivery  = "X-Inboxmq-Delivery"  // the event's delivery id, the same on every attempt, on any node
)

// Webhook defaults and backoff.
const (
	DefaultWebhookTimeout = 5 * time.Second
	DefaultWebhookRetries = 3
	backoffBase           = 200 * time.Millisecond
	backoffCap            = 5 * time.Second
	// maxErrorBody is how much of a refused response's body is quoted in
	// the error; the rest is read (to reuse the connection) up to
	// maxDrainBody and discarded.
	maxErrorBody = 200
	maxDrainBody = 64 << 10
)

// WebhookOptions configure a WebhookSink.
type WebhookOptions struct {
	// URL receives the POSTs; http or https.
	URL string
	// Secret keys the HMAC signature; required. Use 32 random bytes or more.
	Secret string
	// Name labels the sink in Stats and logs; "webhook" when empty.
	Name string
	// Timeout bounds each attempt; DefaultWebhookTimeout when 0 or less.
	Timeout time.Duration
	// Retries is how many times a failed attempt is retried:
	// DefaultWebhookRetries when 0, none when negative.
	Retries int
	// Client sends the requests. When nil, a client that does not follow
	// redirects (a 3xx is a failure: a signed body is not re-sent
	// elsewhere).
	Client *http.Client
	// Log gets a Debug line per retried attempt; slog.Default() when nil.
	// Final failures are returned by Send (and logged by the Dispatcher).
	Log *slog.Logger
}

// WebhookSink POSTs each event, alone, as its JSON form (see Event) to a
// URL, signed with HMAC-SHA256 (see the package doc). An attempt that
// fails with a network error, a timeout, a 5xx or a 429 is retried with
// exponential backoff (200 ms doubling up to 5 s, with jitter, at least
// what a Retry-After in seconds asks, up to 5 s); any other status
// outside 2xx is final. Send delivers a batch's events in order.
type WebhookSink struct {
	url     string
	logURL  string // scheme://host/path: a query may hold a token
	secret  []byte
	name    string
	timeout time.Duration
	retries int
	client  *http.Client
	log     *slog.Logger
}

var (
	_ Sink = (*WebhookSink)(nil)

	errNoSecret = errors.New("events: webhook Secret is required (unsigned webhooks are not sent)")
)

// NewWebhookSink checks o and returns the sink.
func NewWebhookSink(o WebhookOptions) (*WebhookSink, error) {
	if o.Secret == "" {
		return nil, errNoSecret
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("events: webhook URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("events: webhook URL must be http or https, not %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("events: webhook URL has no host")
	}
	if o.Name == "" {
		o.Name = "webhook"
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultWebhookTimeout
	}
	switch {
	case o.Retries == 0:
		o.Retries = DefaultWebhookRetries
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.Client == nil {
		o.Client = &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &WebhookSink{
		url:     u.String(),
		logURL:  (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String(),
		secret:  []byte(o.Secret),
		name:    o.Name,
		timeout: o.Timeout,
		retries: o.Retries,
		client:  o.Client,
		log:     o.Log,
	}, nil
}

// Name returns the sink's name, "webhook" by default.
func (s *WebhookSink) Name() string { return s.name }

// Close drops the sink's idle keep-alive connections; the Outbox calls it
// when it closes, after its last Send.
func (s *WebhookSink) Close() { s.client.CloseIdleConnections() }

// Send POSTs each event of batch in turn. When some fail it returns a
// *SendError; once ctx ends the rest of the batch fails without a request.
func (s *WebhookSink) Send(ctx context.Context, batch []Event) error {
	var (
		failed int
		errs   []error
	)
	for i, e := range batch {
		if err := ctx.Err(); err != nil {
			failed += len(batch) - i
			errs = append(errs, err)
			break
		}
		if err := s.post(ctx, e); err != nil {
			failed++
			if len(errs) < 3 {
				errs = append(errs, err)
			}
		}
	}
	if failed == 0 {
		return nil
	}
	return &SendError{Failed: failed, Err: errors.Join(errs...)}
}

// post delivers one event, retrying as the type doc says.
func (s *WebhookSink) post(ctx context.Context, e Event) error {
	body, err := e.MarshalJSON()
	if err != nil {
		return err
	}
	sig := Sign(s.secret, body)
	delivery := e.ID
	if delivery == "" {
		delivery = newDeliveryID()
	}
	for attempt := 0; ; attempt++ {
		retryAfter, retry, err := s.attempt(ctx, e.Type, body, sig, delivery)
		if err == nil {
			return nil
		}
		if !retry || attempt >= s.retries {
			return fmt.Errorf("events: webhook %s %s event after %d attempt(s): %w", s.logURL, e.Type, attempt+1, err)
		}
		wait := backoff(attempt, retryAfter)
		s.log.Debug("events: webhook attempt failed; retrying", "sink", s.name, "url", s.logURL,
			"event", e.Type, "attempt", attempt+1, "wait", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("events: webhook %s %s event: %w (gave up: %w)", s.logURL, e.Type, err, ctx.Err())
		}
	}
}

// attempt makes one request. It says whether a failure may be retried,
// and how long the receiver asked to wait (Retry-After, seconds form).
func (s *WebhookSink) attempt(ctx context.Context, typ string, body []byte, sig, delivery string) (retryAfter time.Duration, retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "inboxmq-webhook")
	req.Header.Set(HeaderEvent, typ)
	req.Header.Set(HeaderSignature, sig)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(time.Now().Unix(), 10))
	req.Header.Set(HeaderDelivery, delivery)

	resp, err := s.client.Do(req)
	if err != nil {
		// *url.Error repeats the full URL, query included: keep the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, true, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Drained so that the connection is reused.
		if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBody)); err != nil {
			s.log.Debug("events: webhook response body unreadable", "sink", s.name, "error", err)
		}
		return 0, false, nil
	}
	head, readErr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if readErr == nil {
		_, readErr = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBody))
	}
	if readErr != nil {
		s.log.Debug("events: webhook response body unreadable", "sink", s.name, "error", readErr)
	}
	err = fmt.Errorf("status %s: %q", resp.Status, excerpt(head))
	retry = resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
	if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && secs > 0 {
		retryAfter = time.Duration(secs) * time.Second
	}
	return retryAfter, retry, err
}

// backoff returns the wait before retry number attempt+1: base·2^attempt
// capped, with the upper half jittered so that many brokers restarting
// together do not retry in step, and no less than retryAfter (capped too).
func backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := backoffCap
	if attempt < 16 {
		d = min(backoffBase<<attempt, backoffCap)
	}
	d = d/2 + mrand.N(d/2+1)
	return max(d, min(retryAfter, backoffCap))
}

// Sign returns the X-Inboxmq-Signature value for body: "sha256=" and the
// lower-case hex HMAC-SHA256 of body keyed with secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature reports whether signature (an X-Inboxmq-Signature
// value) signs body with secret, in constant time. A receiver written in
// Go can use it as is; see the package doc for other languages.
func VerifySignature(secret, body []byte, signature string) bool {
	hexSig, ok := strings.CutPrefix(signature, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// newDeliveryID returns 16 random bytes in hex.
func newDeliveryID() string {
	var b [16]byte
	// crypto/rand.Read never fails (it panics if the OS cannot provide).
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// maxExcerpt caps how much of a foreign payload (a response body, a
// malformed notice) goes into an error or a log line.
const maxExcerpt = 120

// excerpt returns at most maxExcerpt bytes of b, cut on a rune boundary,
// with "..." when it was cut.
func excerpt(b []byte) string {
	if len(b) <= maxExcerpt {
		return string(b)
	}
	n := maxExcerpt
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return string(b[:n]) + "..."
}

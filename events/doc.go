// Package events carries events from the broker to the app's back-end,
// and back-end notices into the broker. It does not import the MQTT
// server: the broker emits events and handles notices through it.
//
// # Outbound: events
//
// The broker calls [Dispatcher.Emit] with an [Event]; the Dispatcher keeps
// a bounded queue per [Sink] and delivers from one worker goroutine per
// sink, so Emit never blocks and a slow webhook does not hold back Redis.
// When a sink's queue is full the event is dropped for that sink and
// counted ([Dispatcher.Stats], DispatcherOptions.OnDrop). Delivery is
// best effort: events are kept in memory only and are lost if the broker
// stops; the inbox log, not these events, is the record of messages.
//
// Two sinks are provided:
//
//   - [WebhookSink] POSTs each event, one per request, to an http(s) URL,
//     signed, with retries (see below).
//   - [RedisSink] PUBLISHes each event on a Redis channel chosen by its
//     type: by default (the legacy channels) push on
//     "chat_message_channel", login and logout on "login_message_channel",
//     message not at all.
//
// Every sink sends the same JSON form of an event: one object with
// "event" (the type), "time" (Unix milliseconds, an integer) and the
// event's Data fields at the top level, keys sorted, no HTML escaping.
// The broker chooses Data; the fields it is meant to send are (uids are
// strings):
//
//	push    {"event":"push","time":1735689600123,"from":"10001","msgid":"382697444573446144","nickname":"张三","preview":"你好","uid":"10021","unread":3}
//	login   {"event":"login","time":1735689600123,"uid":"10021"}
//	logout  {"event":"logout","time":1735689600123,"uid":"10021"}
//	message {"event":"message","time":1735689600123,"from":"10001","msgid":"382697444573446144","uid":"10021"}
//
// push is for a recipient who is offline (send a mobile push); preview is
// the start of the message. Receivers must ignore fields they do not know.
//
// # Webhook requests and their signature
//
// Each request is a POST of one event's JSON with these headers:
//
//	Content-Type:        application/json
//	X-Inboxmq-Event:     push
//	X-Inboxmq-Signature: sha256=<hex HMAC-SHA256 of the exact body, keyed with the secret>
//	X-Inboxmq-Timestamp: <Unix seconds when this attempt was sent>
//	X-Inboxmq-Delivery:  <random id, the same on every retry of the event>
//
// Any 2xx accepts the event. A network error, a timeout, a 5xx or a 429
// is retried (WebhookOptions.Retries times, backoff from 200 ms doubling
// to at most 5 s, with jitter); any other status, including redirects, is
// final. A retried event may arrive twice, when an accepting response was
// lost: dedupe on X-Inboxmq-Delivery (or on the event's msgid).
//
// A receiver computes the HMAC over the raw body bytes, before any JSON
// parsing, and compares in constant time. Only the body is signed, so a
// receiver that wants to refuse replays checks the body's "time" (and the
// delivery id), not the timestamp header. In Go ([VerifySignature] does
// the same):
//
//	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
//	if err != nil { ... }
//	mac := hmac.New(sha256.New, secret)
//	mac.Write(body)
//	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
//	if !hmac.Equal([]byte(r.Header.Get("X-Inboxmq-Signature")), []byte(want)) {
//		http.Error(w, "bad signature", http.StatusUnauthorized) // 401: not retried
//		return
//	}
//
// # Inbound: back-end notices
//
// [ListenNotifications] subscribes to a Redis channel on which the
// back-end publishes the legacy notice shape
//
//	{"toWho":[10021,"10022"],"needStore":true,"content":"...","msgtype":0,"msgid":0,"event":""}
//
// and calls Handle with each valid [Notice] ([ParseNotice] gives the
// rules; an empty or absent toWho means everyone). Malformed payloads are
// logged with a short excerpt and counted, never fatal. go-redis
// reconnects and subscribes again by itself after a lost connection;
// notices published meanwhile are lost (Redis pub/sub keeps nothing).
//
// # Goroutine safety
//
// [Dispatcher.Emit], [Dispatcher.Stats], [Dispatcher.Close] and
// [Listener.Stats], [Listener.Close] are safe for concurrent use. A
// Dispatcher calls each Sink's Send from one goroutine at a time; the
// provided sinks are also safe to call concurrently. [ParseNotice],
// [Sign], [VerifySignature] and Event's methods are pure. Handle is
// called from the listener's goroutine, one notice at a time. The
// callbacks (OnDrop, OnFailure, OnMalformed) run on the caller's or the
// workers' goroutines and must be quick.
package events

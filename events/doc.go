// Package events carries events from the broker to the app's back-end,
// and back-end notices into the broker. It does not import the MQTT
// server: the broker emits events and handles notices through it.
//
// # Outbound: events
//
// The broker calls [Outbox.Emit] with an [Event]. The Outbox gives it a
// delivery id ([Event.ID]), stores it in the inbox store once per [Sink]
// that wants it (batched, synced, off the caller's path) and delivers what
// is due from one worker goroutine per sink. An event leaves the store
// only when its sink took it (a 2xx from the webhook, an acknowledged
// PUBLISH or XADD from Redis): a failed attempt is retried with capped
// exponential backoff (events.retry_max_interval) until the event is
// older than events.max_age (default 24 h), when it is given up, logged
// and counted. Events survive broker restarts, and on a shared store any
// node delivers them. Delivery is at least once: an event may arrive
// twice (an accepting reply lost, a node killed mid-attempt), always with
// the same delivery id, so receivers drop repeats by id. While a receiver
// is down, one event is tried per backoff interval, not every waiting one.
//
// Three sinks are provided:
//
//   - [WebhookSink] POSTs each event, one per request, to an http(s) URL,
//     signed (see below).
//   - [RedisSink] PUBLISHes each event on a Redis channel chosen by its
//     type: by default (the legacy channels) push and push_cancel on
//     "chat_message_channel", login and logout on "login_message_channel",
//     message not at all. Pub/sub keeps nothing for a subscriber that is
//     away.
//   - [StreamSink] appends each event to a Redis Stream (XADD, MAXLEN ~),
//     which keeps them for consumers that were away: the sink for
//     back-ends that need every event.
//
// Every sink sends the same JSON form of an event: one object with
// "event" (the type), "time" (Unix milliseconds, an integer), "id" (the
// delivery id) and the event's Data fields at the top level, keys sorted,
// no HTML escaping.
// The broker chooses Data; the fields it is meant to send are (uids are
// strings):
//
//	push        {"event":"push","time":1735689600123,"id":"9f2c...","from":"10001","msgid":"382697444573446144","nickname":"张三","preview":"你好","uid":"10021","unread":3}
//	push_cancel {"event":"push_cancel","time":1735689600456,"id":"41ab...","msgid":"382697444573446144","uid":"10021","unread":0}
//	login       {"event":"login","time":1735689600123,"id":"...","uid":"10021"}
//	logout      {"event":"logout","time":1735689600123,"id":"...","uid":"10021"}
//	message     {"event":"message","time":1735689600123,"id":"...","from":"10001","msgid":"382697444573446144","uid":"10021"}
//
// push is for a recipient who has not acknowledged a message in time (send
// a mobile push; unread is the badge); preview is the start of the
// message. push_cancel says a device of uid acknowledged the messages up
// to msgid, the newest a push announced: clear the notification and set
// the badge to unread. Receivers must ignore fields they do not know.
//
// # Webhook requests and their signature
//
// Each request is a POST of one event's JSON with these headers:
//
//	Content-Type:        application/json
//	X-Inboxmq-Event:     push
//	X-Inboxmq-Signature: sha256=<hex HMAC-SHA256 of the exact body, keyed with the secret>
//	X-Inboxmq-Timestamp: <Unix seconds when this attempt was sent>
//	X-Inboxmq-Delivery:  <the delivery id, the same on every attempt, also the body's "id">
//
// Any 2xx accepts the event; anything else, or no answer within the
// timeout, is a failed attempt, retried as above (WebhookOptions.Retries
// quick retries inside one attempt first). Dedupe on X-Inboxmq-Delivery.
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
// [Outbox.Emit], [Outbox.Stats], [Outbox.Backlog], [Outbox.Close] and
// [Listener.Stats], [Listener.Close] are safe for concurrent use. An
// Outbox calls each Sink's Send from one goroutine at a time; the
// provided sinks are also safe to call concurrently. [ParseNotice],
// [Sign], [VerifySignature] and Event's methods are pure. Handle is
// called from the listener's goroutine, one notice at a time. The
// callbacks (OnDrop, OnRetry, OnGiveUp, OnMalformed) run on the caller's
// or the workers' goroutines and must be quick.
package events

// Package delivery is the mochi hook that turns inboxmq's inbox log into
// MQTT traffic and client requests into inbox log entries.
//
// Inbound: every client PUBLISH passes OnPublish. Requests on the im/
// topics are parsed by package bridge, authorized by acl.Policy, appended
// durably to the inbox log, and only then acknowledged (the PUBACK follows
// OnPublish), so an acknowledged message is never lost. Bad input gets an
// Error envelope on the sender's inbox topic, a reason code for MQTT 5
// senders, and a log line; the connection stays up. Publishes to other
// topics are decided by the policy here (see package access for why).
//
// Outbound: mochi never routes inbox messages. Each connection subscribed
// to its inbox topic has a conn with a delivery cursor (the acknowledged
// prefix of the inbox, persisted per device) and a window of unacknowledged
// messages. When an inbox grows, its connections are woken and a short-lived
// pump goroutine reads the log after the cursor and writes PUBLISH packets in
// Seq order; it exits when the window is full or the log is drained, so an
// idle connection costs no goroutine. Packets are registered in mochi's
// inflight map only so packet ids never collide; they are removed from it
// when the connection ends, because the log (not mochi's unordered, lossy
// inflight store) is what redelivers them on the next connection.
//
// Lock order: Hook.mu, then conn.mu, then mochi's client lock. The hook is
// safe for concurrent use.
package delivery

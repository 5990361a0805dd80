// Package delivery is the mochi hook that turns inboxmq's inbox log into
// MQTT traffic and client requests into calls of the messaging core.
//
// Inbound: every client PUBLISH passes OnPublish. Requests on the im/
// topics are parsed by package bridge, authorized by acl.Policy, and
// performed by a messaging.Service, which stores them durably; only then
// are they acknowledged (the PUBACK follows the store's answer; for a QoS 1
// im/sendmsg the hook writes it, with the sender's copy, see ackcopy.go),
// so an acknowledged message is never lost. Bad input gets an Error envelope on the sender's
// inbox topic, a reason code for MQTT 5 senders, and a log line; the
// connection stays up. Publishes to other topics are decided by the policy
// here (see package access for why). The hook is the service's
// messaging.Delivery: what the service stores reaches connections through
// Hook.Stored.
//
// Outbound: mochi never routes inbox messages or stored broadcasts. Each
// connection has a conn with two lanes: its inbox on inbox/{uid}, and the
// broadcast log (inbox.BroadcastInbox) on "broadcast". A lane the client
// subscribed to has a delivery cursor (the acknowledged prefix of its log,
// persisted per device) and a window of unacknowledged messages. When a log
// grows, its connections are woken and a short-lived pump goroutine reads
// the log after the cursor and writes PUBLISH packets in Seq order; it exits
// when the windows are full or the logs are drained, so an idle connection
// costs no goroutine. Packet ids come from a block at the top of the id
// space, registered in mochi's inflight map only once mochi's own ids come
// near it, so they never collide (see packetids.go); they are removed
// from it when the connection ends, because the log (not mochi's
// unordered, lossy inflight store) is what redelivers them on the next
// connection. A broadcast is stored once and
// fanned out this way: no per-user copy, and a slow subscriber holds one
// window of it, not every unacknowledged notice.
//
// Lock order: Hook.mu, then conn.flushMu, then conn.mu, then flow.mu, then
// mochi's client lock. No store call is made with Hook.mu, conn.mu or
// flow.mu held: a connection's final position writes hold only its
// flushMu, and the node's batched ones (ackWriter) no lock at all. The
// hook is safe for concurrent use.
package delivery

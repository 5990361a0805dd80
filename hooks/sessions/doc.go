// Package sessions is the mochi hook that makes persistent MQTT sessions
// durable: a client with clean session 0 (3.1.1) or a session expiry above 0
// (MQTT 5) keeps its subscriptions, with their QoS and MQTT 5 options, and
// its expiry across graceful restarts and crashes, and on a shared (Redis)
// store across nodes. Most client libraries do not subscribe again when the
// CONNACK says session present, so without this a restart silently stops
// their deliveries. Retained messages of opened topics are kept the same
// way.
//
// The session state lives in the inbox store (inbox.Sessions), beside the
// log; messages are not part of it, because the log and the device cursors
// already redeliver everything unacknowledged. mochi's own session store
// (its storage hooks) is not used: they lose offline messages, and they
// keep state per node.
//
// Each live connection with a persistent session holds it under an owner
// token unique to that connection. The connection writes the session when
// it is established (PutSession), before each SUBACK and UNSUBACK
// (UpdateSession), and when it ends (the expiry), and only while it is the
// holder, so a late write of a connection that was taken over never undoes
// the new one's. At start the hook puts the stored sessions back into mochi
// as disconnected clients; on a shared store it also looks the session up
// when a client connects, because it may have been held on another node.
//
// The hook is safe for concurrent use.
package sessions

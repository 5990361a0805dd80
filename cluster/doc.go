// Package cluster connects inboxmq nodes that share one Redis (a single
// instance, Sentinel, or Redis Cluster). Redis is the distributed engine:
// the inbox log lives in the Redis store (inbox/redis), and this package
// only carries the few signals nodes must exchange, over Redis pub/sub:
//
//   - wake: an inbox grew; nodes holding a connection of that uid pump it.
//     For the broadcast log (inbox.BroadcastInbox) every connection
//     subscribed to "broadcast" reads it.
//   - login: a user logged in on one node; in single-login mode the other
//     nodes log out that user's older connections.
//   - kick: an admin logged a user out.
//
// All signals go on one channel, <prefix>{signals} (the store's key prefix,
// then a hash tag of its own, so on a Cluster it has its own slot), that every node
// subscribes to; a node ignores its own signals (it already acted locally).
// A signal carries no message content, only the uid, so a lost signal is
// never a lost message: the log still holds it, and every node re-reads
// the inboxes of its connections when its subscription is re-established.
//
// A Node is safe for concurrent use.
package cluster

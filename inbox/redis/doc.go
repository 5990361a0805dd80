// Package redisstore is the scale-out inbox.Store: several inboxmq nodes
// share one Redis, a single instance, a Sentinel-managed primary or a Redis
// Cluster. The caller builds the go-redis client (redis.NewClient,
// redis.NewFailoverClient or redis.NewClusterClient) and passes it in
// Options; the Store never closes it.
//
// A Store is safe for concurrent use, and any number of Stores, in one
// process or on many nodes, may share a Redis and a Prefix as long as each
// has its own Options.Inbox.NodeID. Every method takes the Store's
// lifetime lock shared; Close takes it exclusively, waits for the methods
// in progress and makes later calls fail with an error wrapping
// inbox.ErrClosed. OnDrop is called inside the method that dropped, so it
// must not call Close.
//
// # Durability
//
// Append returns only after Redis has acknowledged every write. The store
// is then exactly as durable as the Redis persistence configured: with
// appendonly yes and appendfsync always an acknowledged Append survives a
// crash of Redis; with appendfsync everysec up to a second of writes can be
// lost; without persistence a restart loses everything. Replication is
// asynchronous, so a failover to a replica can lose writes the old primary
// acknowledged (the store does not use WAIT). Cursors and read marks are
// written like messages, so they are as durable.
//
// # Key layout
//
// P is Options.Prefix (it must not contain braces). Every key of one inbox
// carries the uid as its hash tag, so an inbox lives in one Cluster slot
// and one Lua script updates it atomically. In the tag, '{', '}' and '%' of
// a uid are percent-escaped: a '}' would end the tag early.
//
//	P im:{uid}:h          HASH  s: highest Seq ever assigned (never goes back)
//	                            i: last message id; n: messages held (absent: count the log)
//	                            a: last append of the Cluster protocol (token, first Seq, dropped)
//	                            dn, dx: request records held, when dd's expiry was last set (ms)
//	                            P: th entries not written yet (thread, Seq; see scripts.go)
//	                            L: "1" while a node of the Cluster protocol may hold lk
//	                            b: "1" if bl may have members, "0" if not (absent: unknown)
//	P im:{uid}:m          ZSET  the log: score Seq, member the encoded message
//	P im:{uid}:th         ZSET  threads: member thread name, score its newest held Seq
//	                            (written behind: with h's P it is exact)
//	P im:{uid}:t:<thread> ZSET  a thread's messages that are not incoming: member and score Seq
//	P im:{uid}:u:<thread> ZSET  its incoming messages: score Seq, member "Seq:" or,
//	                            for notices, "Seq:MsgType"
//	P im:{uid}:r          HASH  thread -> read mark Seq (any thread name)
//	P im:{uid}:bl         SET   uids whose direct messages uid refuses (blocks.go)
//	P im:{uid}:lk         STRING append lock (Cluster protocol): the holder's token, expiring after 3s
//	P im:{uid}:dd         HASH  request key -> record "sum time id seq,seq..." of requests whose
//	                            first entry is in this inbox (inbox.Request.Key); it expires
//	                            at least the dedupe window after its newest record
//	P {$global}:oldest    ZSET  sweep index: member uid, score about its oldest message time
//	P {$global}:cur       ZSET  delivery cursors: member len(uid) ":" uid device, score the cursor Seq
//	P {$global}:layout    STRING layout version, 1
//	P {$global}:sess      HASH  session id -> persistent MQTT session (inbox.EncodeSession)
//	P {$global}:sessx     ZSET  expiry index: session id scored by Expires (Unix ms)
//	P {$global}:ret       HASH  topic -> retained message of an opened topic (opaque)
//	P {$global}:push      ZSET  push schedule: member "seq:uid", score due time (Unix ms)
//	P {$global}:ev:<sink> ZSET  event outbox of a sink: entry id scored by due time (Unix ms)
//	P {$global}:evd:<sink> HASH entry id -> event waiting for the sink (inbox.EncodeOutboxEntry)
//
// The global keys share their own hash tag, so on a Cluster they live
// in one slot, on one master: ExpireBefore starts from that single
// well-known key, and one ZADD GT writes the cursors of many devices of
// many inboxes forward (WriteAcks), which the delivery side does for all
// its connections at once.
//
// Layout 1, which the same layout version still names, also wrote: a time
// index P im:{uid}:tm (member Seq, score append time), every Seq of a
// thread in t: (incoming ones too), the cursors in P im:{uid}:c (device ->
// Seq), and the request records' ages in P im:{uid}:ddt. Such an inbox is
// read and written as it is: Thread merges t: and u:, Cursor takes the
// higher of :c and the global index, the sweep clears tm by time, and ddt
// expires on its own. Inboxes written before h had P, L and b read as
// having nothing pending, no lock (a Cluster-protocol node of such an
// older build, which takes lk without marking h, is not seen by the
// one-script protocol: do not mix them on one single Redis), and a block
// list that may have members (checked, then marked). Nothing needs
// migrating.
//
// A log member is a version byte (1), the Seq (uvarint), the kind (1
// byte), the peer (uvarint length and bytes), the id (uvarint), the time
// (varint, Unix ms), nickname, avatar, content, extra, cid (strings like
// the peer), msgtype (varint), event and ref. The client encodes all but
// the version and Seq, which the append script puts in front once it has
// assigned the Seq. Kind and peer come first so that the scripts can tell
// a message's thread without decoding the rest; UID is in the key.
//
// Read is one ZRANGE BYSCORE of the log from the Seq asked for. A thread
// is read newest first from its t: and u: indexes, merged, each message
// fetched from the log by Seq inside one script. Unread counts are ZCOUNTs of the u:
// indexes above each thread's read mark, and notices by MsgType come from
// the members of u:$notices above the mark, so counting decodes no message.
//
// # Append
//
// Submit (and Append, which is Submit without a key or pushes) writes one
// or two inboxes (recipient and sender's copy), the request record of a
// keyed request in the first inbox, and the push schedule. All entries
// share one id, and ids must increase in every inbox in Seq order, across
// nodes. How that is done depends on the Redis:
//
// A single Redis (or a Sentinel-managed one) runs one script per Submit,
// one round trip, atomic: it refuses the request when the recipient's
// block list holds Request.RefuseIfBlocked, returns the original entries
// if the request record is there (a resend), checks the node's id is above every inbox's
// last id (else it returns the highest, the node moves its generator past
// it and tries again: another node's clock ran ahead), appends to each
// inbox, adds the push entries and the sweep index entries, and writes the
// record. So a request is stored whole or not at all, and a resend of a
// stored one is found. It also waits for an inbox's append lock held by a
// node of the Cluster protocol (h's L says when to look).
//
// Every direct message runs that script, so it is written for few
// commands (11 for a direct message with a cid and a push check, the
// EVALSHA included, counted by TestSubmitCommands; see
// docs/performance.md): one HMGET and one HSET of each inbox's h, one
// HSETNX that both looks the request key up and records it (an HGET more
// on a resend), a ZADD of each entry to the log and to its thread index,
// and one ZADD of the push entries. What an inbox pays rarely is kept out
// of the common path, in fields of h the script reads and writes anyway:
// h counts the messages held (n), so no ZCARD runs below MaxPerInbox and
// the sweep index is written only when an inbox was empty (and every 64
// Seqs, in case a count was off: ZADD LT never raises a score); th's new
// entries wait in P until about 200 bytes of them are written in one
// ZADD (Threads, Unread, Delete, expiry and trimming write them first);
// the block list is read only when b says it may have members, the lock
// only when L says one may be held. The request records are trimmed only
// when they pass the cap (to an eighth below it, so not at every
// request), and their expiry is set once a quarter window.
//
// A Redis Cluster puts the inboxes in different slots, so no one script
// can write both. Submit takes a short lock on every inbox first:
//
//  1. One pipelined round trip runs a lock script per inbox: it sets the
//     inbox's lock to a token unique to this Submit (SET PX 3s) and returns
//     the inbox's last id and highest Seq; the first inbox's also returns
//     the request record, if any (then Submit releases the locks and
//     returns the original entries), and refuses a sender its block list
//     holds (then Submit releases the other locks). It marks h (L). If another appender holds a lock,
//     Submit releases those it took and tries again after a short
//     jittered backoff, until its context is done. A crashed holder's lock
//     expires.
//  2. Holding every lock, the node picks the id: from its inbox.IDGen,
//     moved past the highest last id read if another node went further.
//     Every id carries the node id, so nodes never issue the same one.
//  3. One pipelined round trip runs an append script per inbox, a ZADD LT
//     of the uids to the sweep index and a ZADD of the push entries (their
//     Seqs follow the heads read under the locks). Each script checks the
//     lock is still the Submit's, assigns the Seqs, stores and indexes the
//     messages, trims overflow beyond MaxPerInbox, records the id and
//     releases the lock; the first inbox's also writes the request record.
//
// Each inbox's part is atomic; the first inbox's is the commit point. If
// Redis fails after it (a master down, a reply lost, a holder stalled past
// the lock's TTL) Submit returns the entries with inbox.ErrPartial, naming
// what failed: the request is stored for its recipient and a resend finds
// it. If it fails before, Submit returns an error that names any inbox
// written. A retried append script (after a lost reply) finds its result
// recorded under "a" and returns it instead of appending twice.
//
// The locks serialise appends to one inbox, across all nodes, to about one
// per two round trips: a few thousand per second on a LAN, far above what
// one user receives.
//
// # Failures
//
// An error wrapping inbox.ErrNotStored means Redis certainly holds nothing
// of the request (see classify): a refused dial, the pool giving up before
// sending, an error reply. A timeout after the script was sent is not such
// an error: the script may run when Redis resumes. This needs a client
// with MaxRetries -1 (Options.Client).
//
// # Round trips
//
// In the common case, with the scripts cached in Redis:
//
//	Open                         1
//	Submit, Append               1 (Cluster: 2, one more per retry when a lock is busy, plus the backoff)
//	Read, Bounds, Cursor         1
//	SetCursor                    1 (ZADD GT: forward only)
//	WriteAcks                    1 for any number of cursors and acknowledged push checks
//	MarkRead                     1 (a script: compare and set, forward only)
//	ReadMark                     1
//	Thread, Threads, Unread      1 (a script; Threads and Unread do work per thread)
//	Delete                       1 (a script: message, indexes and thread list at once)
//	ExpireBefore                 3 per 256 inboxes due (up to 5 when some emptied), and 1 to find none left
//
// Redis forgets its script cache on a restart or failover; the first call
// of each script after that costs one more round trip (EVALSHA, then EVAL).
// On a Cluster a pipeline touching several masters is one round trip to
// each, in parallel.
//
// # Expiry
//
// ExpireBefore reads the sweep index from its lowest score, up to 256 uids
// at a time, and runs one expire script per inbox (pipelined). The script
// drops the inbox's messages appended before the cut, oldest Seq first, at
// most 1000 per call, with their index entries, and returns the oldest time
// left; it reads each message's time from the message itself and stops at
// the first one appended at or after the cut. The
// sweep then rescores the entry, or removes it when the inbox is empty and
// not locked for an append, and probes such inboxes once more, putting back
// the entry of any that an append reached meanwhile. A single Redis writes
// the index entry in the append script itself; on a Cluster an append takes
// its lock before it writes its index entry, so a racing append either
// shows in the probe or writes its entry after the removal: an inbox that
// holds messages never loses its entry. If a Cluster append fails after its
// script but before its index write, the entry comes back with the inbox's
// next append. Message times are each node's clock, so with clocks apart a
// message may outlive its retention by the difference (also a message
// behind a younger one in Seq order, appended by a node whose clock was
// behind). Several nodes may
// sweep at once; each message is dropped and reported once.
//
// # Lua
//
// Every script runs on one inbox. Besides the keys it declares it touches
// other keys of the same inbox that it finds at run time (a dropped
// message's thread, the threads listed in th); they carry the same hash
// tag, and Redis Cluster allows a script any key of the slot its declared
// keys are in. Ids, cursors and read marks stay decimal strings in Lua,
// whose numbers are doubles; Seqs are Lua numbers, exact below 2^53.
//
// # Client settings
//
// Context deadlines bound every method between round trips, and the wait
// for a busy lock; they cut a network wait short only when the client has
// ContextTimeoutEnabled set, as it should. Reads must go to masters (no
// ReadOnly or RouteByLatency on a cluster client), or a node may not see
// an Append it just made.
package redisstore

// Package pebblestore is the embedded default inbox.Store, kept in a Pebble
// database in one directory.
//
// # Durability
//
// Append returns only after its batch is fsync'd to Pebble's write-ahead
// log. Appends take one mutex just long enough to assign ids, Seqs and the
// time, to read the oldest messages of a full inbox (see the head, below)
// and to hand the batch to Pebble (DB.ApplyNoSyncWait); they wait for the
// fsync outside it (Batch.SyncWait), so concurrent appenders share fsyncs
// (group commit). With Tuning.WALSyncInterval the fsyncs are at least that
// far apart, so that appenders arriving within it share one too. Because ids are assigned and batches applied in the same
// critical section, ids increase in every inbox in Seq order, and a reader
// never sees Seq n+1 of an inbox before Seq n. Like any Pebble write, an
// append is visible to readers a moment before its fsync completes.
//
// Delete is durable like Append, and shares its fsyncs: a deleted message
// does not come back after a crash. SetCursor, MarkRead and the deletes of
// ExpireBefore are not synced: after a crash a device may see messages
// again, a thread may count as unread again, or an expired message may
// reappear until the next sweep, but nothing acknowledged by Append or
// Delete is lost. Session writes (PutSession, UpdateSession, DeleteSession)
// and retained messages are synced, so a SUBACK a client saw survives a
// crash; ExpireSessions' deletes are not.
//
// # Message ids
//
// Ids come from inbox.IDGen with Options.NodeID: a uint64 in decimal, 18
// digits now and 19 from mid-2031, so compare ids as integers. The store
// keeps an id at or above every id issued ("i"): when an append's id
// passes it, the same batch raises it to the id of a second from now, so
// a reopened store never issues a smaller id, even if the clock went back,
// and "i" is written about once a second rather than with every message.
// Stores that wrote the last id itself there (before) read the same way.
//
// # Key layout
//
// Uids may be any non-empty string without a 0x00 byte (inboxmq uids are 1
// to 64 characters of [A-Za-z0-9_.-]); 0x00 separates a uid from what
// follows it, so uid "1" can never read keys of uid "10". The same holds
// for thread names in the index, so Append refuses a direct or sent message
// whose Peer has a 0x00. Integers are 8-byte big-endian so that keys sort in
// numeric order.
//
//	"m" uid 0x00 seq               -> message, encoded as below (uid and seq are in the key)
//	"t" uid 0x00 thread 0x00 seq   -> thread index entry: kind (1 byte), msgtype (varint)
//	"r" uid 0x00 thread            -> read mark Seq (any thread name, so it is last)
//	"p" due(8) uid 0x00 seq        -> push schedule entry (empty; due is Unix ms; a claim moves it)
//	"q" end(8) uid 0x00 time(8) key -> request record: sum(32) time(8) id(8) seq(8) per entry;
//	                                  end is its age bucket's (requests.go)
//	"h" uid                        -> head: last, first, held (see below)
//	"c" uid 0x00 device            -> cursor Seq of one device (device is any bytes, so it is last)
//	"b" uid 0x00 blocked           -> empty: uid refuses direct messages from blocked (blocks.go)
//	"s" id                         -> persistent MQTT session (inbox.EncodeSession)
//	"x" expires(8) id              -> empty: expiry index of disconnected sessions
//	"R" topic                      -> retained message of an opened topic (opaque)
//	"o" sink 0x00 due(8) id        -> event waiting for a sink (inbox.EncodeOutboxEntry)
//	"O" sink 0x00 id               -> its due time: finds an outbox entry by id
//	"i"                            -> an id at or above every id issued
//	"v"                            -> layout version, 4
//
// A message value is a version byte (1) followed by: id (uvarint), time
// (varint, Unix ms), kind (1 byte), peer, nickname, avatar, content, extra,
// cid (each a uvarint length and bytes), msgtype (varint), event, ref.
//
// The thread index has one entry per held message that is in a thread
// (inbox.Message.Thread), written and deleted in the same batch as the
// message by Append, Delete, overflow and expiry. Its value carries what
// Unread counts by, so counting decodes no message. Thread walks one
// thread's entries back from its before key; Threads and Unread walk a
// uid's index one thread at a time, seeking past each thread's read mark
// (and, for Threads, to its newest entry), so they cost a few seeks per
// thread plus a step per unread message. Each of them reads through one
// iterator spanning the uid's messages, marks and index, so the index and
// the messages it names come from one consistent view.
//
// The head of an inbox holds last, the highest Seq ever assigned (it
// survives retention, so Seqs are never reused); first, the lowest Seq
// held (last+1 when none is); and held, how many messages are held, which
// MaxPerInbox limits. Retention drops the oldest messages, Delete any one,
// so first..last may have holes. The store caches heads in memory after
// first use, so Bounds and the overflow check cost no reads. Overflow and
// expiry read the messages they drop, to find their index entries.
//
// A stored head may lag behind the appends (layout 3): an append writes
// its heads only when it drops messages or when last passes a multiple of
// 64, while every batch that removes messages (overflow, Delete, expiry)
// writes them. So the messages above a stored head's last are the appends
// since it was written, and loading a head counts them (heads.go).
//
// Submit writes a request's messages, thread index entries, heads (when
// due), push schedule entries and request record in one synced batch, after looking
// the record up under the append mutex: a request is stored whole or not
// at all, and a resend of a stored one is answered from its record.
//
// Layout 1 (no thread index, heads of last only) is upgraded by Open, in
// batches, writing the version last, so an interrupted upgrade is redone.
// Layout 2 (a head written with every append) reads as layout 3 as it
// is. Layouts 1 to 3 kept request records under "d" with an age index
// under "D"; Open rewrites them as layout 4's (upgradeRequests) and marks
// the store 4 in the same batch, so that a build of an older layout
// refuses it.
//
// # Concurrency
//
// All Store methods are safe for concurrent use. Lock order: the lifetime
// lock (held shared by every method, exclusively by Close), then either the
// append mutex (every write that adds or removes messages: Append, Delete,
// the batches of overflow and expiry), the session mutex (session writes
// and ExpireSessions) or the mark mutex (SetCursor,
// MarkRead). Readers take neither. OnDrop is called with neither mutex
// held, but inside the method that dropped, so it must not call Close.
package pebblestore

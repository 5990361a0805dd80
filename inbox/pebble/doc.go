// Package pebblestore is the embedded default inbox.Store, kept in a Pebble
// database in one directory.
//
// # Durability
//
// Append returns only after its batch is fsync'd to Pebble's write-ahead
// log. Appends take one mutex just long enough to assign ids, Seqs and the
// time and to hand the batch to Pebble (DB.ApplyNoSyncWait); they wait for
// the fsync outside it (Batch.SyncWait), so concurrent appenders share
// fsyncs (group commit). Because ids are assigned and batches applied in
// the same critical section, ids increase in every inbox in Seq order, and a
// reader never sees Seq n+1 of an inbox without Seq n. Like any Pebble write,
// an append is visible to readers a moment before its fsync completes.
//
// SetCursor and the deletes of ExpireBefore are not synced: after a crash a
// device may see messages again, or an expired message may reappear until
// the next sweep, but nothing acknowledged by Append is lost.
//
// # Message ids
//
// Ids come from inbox.IDGen with Options.NodeID: a uint64 in decimal, 18
// digits now and 19 from mid-2031, so compare ids as integers. The last id
// is written in the same batch as the messages that carry it, so a reopened
// store never issues a smaller one, even if the clock went back.
//
// # Key layout
//
// Uids may be any non-empty string without a 0x00 byte (inboxmq uids are 1
// to 64 characters of [A-Za-z0-9_.-]); 0x00 separates a uid from what
// follows it, so uid "1" can never read keys of uid "10". Integers are
// 8-byte big-endian so that keys sort in numeric order.
//
//	"m" uid 0x00 seq      -> message, encoded as below (uid and seq are in the key)
//	"h" uid               -> highest Seq ever assigned to uid (survives retention)
//	"c" uid 0x00 device   -> cursor Seq of one device (device is any bytes, so it is last)
//	"i"                   -> last message id issued
//	"v"                   -> layout version, 1
//
// A message value is a version byte (1) followed by: id (uvarint), time
// (varint, Unix ms), kind (1 byte), peer, nickname, avatar, content, extra,
// cid (each a uvarint length and bytes), msgtype (varint), event, ref.
//
// The held messages of an inbox are always the contiguous Seqs first..last:
// retention drops only from the oldest end. The store caches first and last
// per uid in memory after first use, so Bounds and the overflow check cost
// no reads.
//
// # Concurrency
//
// All Store methods are safe for concurrent use. Lock order: the lifetime
// lock (held shared by every method, exclusively by Close), then the append
// mutex or the cursor mutex. OnDrop is called with neither mutex held, but
// inside the method that dropped, so it must not call Close.
package pebblestore

// Package shallow keeps the stacks of long-lived goroutines small by
// running calls that need a deep stack on a goroutine of their own.
//
// A goroutine's stack doubles whenever a call needs more than it has, and
// the runtime halves it again only at a garbage collection, one step per
// cycle, and only while less than a quarter of it is in use. mochi keeps
// one reader goroutine per connection for the connection's whole life,
// so whatever its deepest call needed stays allocated for minutes. Pebble
// needs about 15 KB of stack for every read (pebble v1.1.5's
// Iterator.Close builds its 14 KB iterAlloc struct on the stack), so a
// store read at connect or subscribe time took an idle connection's
// reader from 16 KB to 32 or 64 KB. Pool.Run executes such a call on a
// worker goroutine and waits for it; workers left idle for 10 s end, and
// their stacks with them, and Close ends them all.
//
// A call costs two channel handoffs, so a Pool is for calls made once per
// connection or per session change, not per message.
package shallow

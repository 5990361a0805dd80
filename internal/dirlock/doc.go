// Package dirlock makes one process at a time the owner of a data
// directory, and tells the one refused which process owns it.
//
// The lock is an advisory file lock (flock(2) on Unix, LockFileEx on
// Windows, through github.com/gofrs/flock) on DIR/inboxmq.lock, so the
// kernel drops it when its process ends, however it ends: a lock is never
// stale. The owner's pid is written to DIR/inboxmq.pid for the error
// message only; it proves nothing by itself. A Lock is not meant to be
// shared between goroutines.
package dirlock

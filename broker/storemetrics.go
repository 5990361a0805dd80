package broker

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/inboxmq/inboxmq/inbox"
	pebblestore "github.com/inboxmq/inboxmq/inbox/pebble"
)

// The store's latency and errors, measured by a decorator the broker puts
// around whichever store it opened (observeStore), so that no store method
// needs to know about metrics and both backends are measured alike.
//
// Each call costs a time.Now, one histogram observation and, on error, one
// counter increment, on children resolved once at start: no label lookup
// on the hot path.

// storeOp names one method of inbox.Store; its label value is in storeOps.
type storeOp uint8

const (
	opAppend storeOp = iota
	opRead
	opBounds
	opCursor
	opSetCursor
	opWriteAcks
	opExpireBefore
	opSubmit
	opThread
	opThreads
	opMarkRead
	opReadMark
	opUnread
	opDelete
	opEdit
	opSchedulePush
	opClaimDuePushes
	opDonePushes
	opPutSession
	opUpdateSession
	opSession
	opSessions
	opDeleteSession
	opExpireSessions
	opPutRetained
	opDeleteRetained
	opRetainedMessages
	opEnqueueEvents
	opClaimDueEvents
	opRescheduleEvent
	opDeleteEvents
	opOutboxLen
	opBlock
	opUnblock
	opBlockList
	opIsBlocked
	numStoreOps
)

// storeOps are the op label values, in storeOp order.
var storeOps = [numStoreOps]string{
	"append", "read", "bounds", "cursor", "set_cursor", "write_acks", "expire_before", "submit",
	"thread", "threads", "mark_read", "read_mark", "unread", "delete", "edit",
	"schedule_push", "claim_due_pushes", "done_pushes",
	"put_session", "update_session", "session", "sessions", "delete_session", "expire_sessions",
	"put_retained", "delete_retained", "retained_messages",
	"enqueue_events", "claim_due_events", "reschedule_event", "delete_events", "outbox_len",
	"block", "unblock", "block_list", "is_blocked",
}

// storeBackend is the backend label value of a configured store.
func storeBackend(store string) string {
	if store == "redis" {
		return "redis"
	}
	return "pebble"
}

// storeObservers are one backend's pre-resolved children.
type storeObservers struct {
	took   [numStoreOps]prometheus.Observer
	failed [numStoreOps]prometheus.Counter
}

// done records one call of op that started at start and returned *err.
// It is deferred with a pointer to the method's named error.
func (o *storeObservers) done(op storeOp, start time.Time, err *error) {
	o.took[op].Observe(time.Since(start).Seconds())
	if *err != nil && storeFault(*err) {
		o.failed[op].Inc()
	}
}

// storeFault tells a failure of the store from an answer that is an
// error only to the caller: a full block list or an over-long request key
// is the client's refusal, and a cancelled context the caller giving up.
func storeFault(err error) bool {
	return !errors.Is(err, inbox.ErrTooManyBlocks) && !errors.Is(err, inbox.ErrBadRequestKey) &&
		!errors.Is(err, inbox.ErrBlocked) && !errors.Is(err, context.Canceled)
}

// observeStore registers the store histogram and error counter, with
// every op's series of backend ("pebble" or "redis") at 0, and returns s
// measured under backend. The result implements inbox.AckWriter exactly
// when s does, so callers that look for it by type assertion still find it.
func (m *metrics) observeStore(s inbox.Store, backend string) inbox.Store {
	took := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "inboxmq_store_operation_duration_seconds",
		Help: "Latency of inbox store calls, by backend (pebble, redis) and operation.",
		// Half decades from 100 µs (a Pebble read) to 3 s (a Redis call near redis.timeout).
		Buckets: []float64{0.0001, 0.000316, 0.001, 0.00316, 0.01, 0.0316, 0.1, 0.316, 1, 3.16},
	}, []string{"backend", "op"})
	failed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inboxmq_store_errors_total",
		Help: "Inbox store calls that failed (timeouts, unreachable Redis, I/O errors), by backend and operation.",
	}, []string{"backend", "op"})
	m.reg.MustRegister(took, failed)
	obs := new(storeObservers)
	for op, name := range storeOps {
		obs.took[op] = took.WithLabelValues(backend, name)
		obs.failed[op] = failed.WithLabelValues(backend, name)
	}
	o := &observedStore{next: s, obs: obs}
	if aw, ok := s.(inbox.AckWriter); ok {
		return &observedAckStore{observedStore: o, acks: aw}
	}
	return o
}

// newWALSyncHistogram is inboxmq_store_wal_fsync_duration_seconds: how
// long the embedded store's WAL syncs take. Every PUBACK of a stored
// message waits for one, so when delivery p99 rises this tells the disk's
// share from the broker's.
func newWALSyncHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "inboxmq_store_wal_fsync_duration_seconds",
		Help: "Latency of the embedded store's write-ahead log syncs (fdatasync), which every acknowledged message waits for.",
		// Half decades from 100 µs (an SSD) to 3 s (a stalled disk).
		Buckets: []float64{0.0001, 0.000316, 0.001, 0.00316, 0.01, 0.0316, 0.1, 0.316, 1, 3.16},
	})
}

// embeddedStore returns the Pebble store under s's decorators, if s is one.
func embeddedStore(s inbox.Store) (*pebblestore.Store, bool) {
	switch v := s.(type) {
	case *observedAckStore:
		s = v.next
	case *observedStore:
		s = v.next
	}
	p, ok := s.(*pebblestore.Store)
	return p, ok
}

// observedStore forwards every call to next and measures it.
type observedStore struct {
	next inbox.Store
	obs  *storeObservers
}

var _ inbox.Store = (*observedStore)(nil)

type observedAckStore struct {
	*observedStore
	acks inbox.AckWriter
}

var _ inbox.AckWriter = (*observedAckStore)(nil)

func (s *observedAckStore) WriteAcks(ctx context.Context, cursors []inbox.CursorPos, acked []inbox.PushRange) (err error) {
	defer s.obs.done(opWriteAcks, time.Now(), &err)
	return s.acks.WriteAcks(ctx, cursors, acked)
}

func (s *observedStore) Close() error { return s.next.Close() }

// SubmitChecksBlocks implements inbox.BlockingSubmitter as next does: the
// messaging service finds it by type assertion and then leaves the block
// list check to Submit (on Redis, no round trip of its own).
func (s *observedStore) SubmitChecksBlocks() bool {
	b, ok := s.next.(inbox.BlockingSubmitter)
	return ok && b.SubmitChecksBlocks()
}

func (s *observedStore) Append(ctx context.Context, msgs []inbox.Message) (out []inbox.Message, err error) {
	defer s.obs.done(opAppend, time.Now(), &err)
	return s.next.Append(ctx, msgs)
}

func (s *observedStore) Read(ctx context.Context, uid string, from uint64, limit int) (out []inbox.Message, err error) {
	defer s.obs.done(opRead, time.Now(), &err)
	return s.next.Read(ctx, uid, from, limit)
}

func (s *observedStore) Bounds(ctx context.Context, uid string) (first, last uint64, err error) {
	defer s.obs.done(opBounds, time.Now(), &err)
	return s.next.Bounds(ctx, uid)
}

func (s *observedStore) Cursor(ctx context.Context, uid, device string) (seq uint64, ok bool, err error) {
	defer s.obs.done(opCursor, time.Now(), &err)
	return s.next.Cursor(ctx, uid, device)
}

func (s *observedStore) SetCursor(ctx context.Context, uid, device string, seq uint64) (err error) {
	defer s.obs.done(opSetCursor, time.Now(), &err)
	return s.next.SetCursor(ctx, uid, device, seq)
}

func (s *observedStore) ExpireBefore(ctx context.Context, t time.Time) (n int, err error) {
	defer s.obs.done(opExpireBefore, time.Now(), &err)
	return s.next.ExpireBefore(ctx, t)
}

func (s *observedStore) Submit(ctx context.Context, req inbox.Request) (r inbox.Receipt, err error) {
	defer s.obs.done(opSubmit, time.Now(), &err)
	return s.next.Submit(ctx, req)
}

func (s *observedStore) Thread(ctx context.Context, uid, thread string, before uint64, limit int) (out []inbox.Message, err error) {
	defer s.obs.done(opThread, time.Now(), &err)
	return s.next.Thread(ctx, uid, thread, before, limit)
}

func (s *observedStore) Threads(ctx context.Context, uid string, before uint64, limit int) (out []inbox.ThreadSummary, err error) {
	defer s.obs.done(opThreads, time.Now(), &err)
	return s.next.Threads(ctx, uid, before, limit)
}

func (s *observedStore) MarkRead(ctx context.Context, uid, thread string, seq uint64) (err error) {
	defer s.obs.done(opMarkRead, time.Now(), &err)
	return s.next.MarkRead(ctx, uid, thread, seq)
}

func (s *observedStore) ReadMark(ctx context.Context, uid, thread string) (seq uint64, err error) {
	defer s.obs.done(opReadMark, time.Now(), &err)
	return s.next.ReadMark(ctx, uid, thread)
}

func (s *observedStore) Unread(ctx context.Context, uid string) (u inbox.Unread, err error) {
	defer s.obs.done(opUnread, time.Now(), &err)
	return s.next.Unread(ctx, uid)
}

func (s *observedStore) Delete(ctx context.Context, uid string, seq uint64) (ok bool, err error) {
	defer s.obs.done(opDelete, time.Now(), &err)
	return s.next.Delete(ctx, uid, seq)
}

func (s *observedStore) Edit(ctx context.Context, uid string, seq uint64, content string, at int64) (ok bool, err error) {
	defer s.obs.done(opEdit, time.Now(), &err)
	return s.next.Edit(ctx, uid, seq, content, at)
}

func (s *observedStore) SchedulePush(ctx context.Context, entries []inbox.PushEntry) (err error) {
	defer s.obs.done(opSchedulePush, time.Now(), &err)
	return s.next.SchedulePush(ctx, entries)
}

func (s *observedStore) ClaimDuePushes(ctx context.Context, now time.Time, lease time.Duration, limit int) (out []inbox.PushEntry, err error) {
	defer s.obs.done(opClaimDuePushes, time.Now(), &err)
	return s.next.ClaimDuePushes(ctx, now, lease, limit)
}

func (s *observedStore) DonePushes(ctx context.Context, entries []inbox.PushEntry) (err error) {
	defer s.obs.done(opDonePushes, time.Now(), &err)
	return s.next.DonePushes(ctx, entries)
}

func (s *observedStore) PutSession(ctx context.Context, sess inbox.Session) (err error) {
	defer s.obs.done(opPutSession, time.Now(), &err)
	return s.next.PutSession(ctx, sess)
}

func (s *observedStore) UpdateSession(ctx context.Context, sess inbox.Session) (ok bool, err error) {
	defer s.obs.done(opUpdateSession, time.Now(), &err)
	return s.next.UpdateSession(ctx, sess)
}

func (s *observedStore) Session(ctx context.Context, id string) (sess inbox.Session, ok bool, err error) {
	defer s.obs.done(opSession, time.Now(), &err)
	return s.next.Session(ctx, id)
}

func (s *observedStore) Sessions(ctx context.Context) (out []inbox.Session, err error) {
	defer s.obs.done(opSessions, time.Now(), &err)
	return s.next.Sessions(ctx)
}

func (s *observedStore) DeleteSession(ctx context.Context, id, owner string) (ok bool, err error) {
	defer s.obs.done(opDeleteSession, time.Now(), &err)
	return s.next.DeleteSession(ctx, id, owner)
}

func (s *observedStore) ExpireSessions(ctx context.Context, now time.Time) (ids []string, err error) {
	defer s.obs.done(opExpireSessions, time.Now(), &err)
	return s.next.ExpireSessions(ctx, now)
}

func (s *observedStore) PutRetained(ctx context.Context, topic string, msg []byte) (err error) {
	defer s.obs.done(opPutRetained, time.Now(), &err)
	return s.next.PutRetained(ctx, topic, msg)
}

func (s *observedStore) DeleteRetained(ctx context.Context, topic string) (err error) {
	defer s.obs.done(opDeleteRetained, time.Now(), &err)
	return s.next.DeleteRetained(ctx, topic)
}

func (s *observedStore) RetainedMessages(ctx context.Context) (out map[string][]byte, err error) {
	defer s.obs.done(opRetainedMessages, time.Now(), &err)
	return s.next.RetainedMessages(ctx)
}

func (s *observedStore) EnqueueEvents(ctx context.Context, entries []inbox.OutboxEntry) (err error) {
	defer s.obs.done(opEnqueueEvents, time.Now(), &err)
	return s.next.EnqueueEvents(ctx, entries)
}

func (s *observedStore) ClaimDueEvents(ctx context.Context, sink string, now time.Time, lease time.Duration, limit int) (out []inbox.OutboxEntry, err error) {
	defer s.obs.done(opClaimDueEvents, time.Now(), &err)
	return s.next.ClaimDueEvents(ctx, sink, now, lease, limit)
}

func (s *observedStore) RescheduleEvent(ctx context.Context, e inbox.OutboxEntry) (err error) {
	defer s.obs.done(opRescheduleEvent, time.Now(), &err)
	return s.next.RescheduleEvent(ctx, e)
}

func (s *observedStore) DeleteEvents(ctx context.Context, sink string, ids []string) (err error) {
	defer s.obs.done(opDeleteEvents, time.Now(), &err)
	return s.next.DeleteEvents(ctx, sink, ids)
}

func (s *observedStore) OutboxLen(ctx context.Context, sink string) (n int, err error) {
	defer s.obs.done(opOutboxLen, time.Now(), &err)
	return s.next.OutboxLen(ctx, sink)
}

func (s *observedStore) Block(ctx context.Context, uid, blocked string, max int) (added bool, err error) {
	defer s.obs.done(opBlock, time.Now(), &err)
	return s.next.Block(ctx, uid, blocked, max)
}

func (s *observedStore) Unblock(ctx context.Context, uid, blocked string) (removed bool, err error) {
	defer s.obs.done(opUnblock, time.Now(), &err)
	return s.next.Unblock(ctx, uid, blocked)
}

func (s *observedStore) BlockList(ctx context.Context, uid string) (out []string, err error) {
	defer s.obs.done(opBlockList, time.Now(), &err)
	return s.next.BlockList(ctx, uid)
}

func (s *observedStore) IsBlocked(ctx context.Context, uid, peer string) (blocked bool, err error) {
	defer s.obs.done(opIsBlocked, time.Now(), &err)
	return s.next.IsBlocked(ctx, uid, peer)
}

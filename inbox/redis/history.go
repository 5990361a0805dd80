package redisstore

import (
	"context"
	"fmt"
	"strconv"

	"github.com/inboxmq/inboxmq/inbox"
)

// Thread implements inbox.History with one script call: the thread's two
// indexes (incoming, and the rest) give the Seqs, the log the messages.
func (s *Store) Thread(ctx context.Context, uid, thread string, before uint64, limit int) ([]inbox.Message, error) {
	if err := s.begin(ctx, uid); err != nil {
		return nil, fmt.Errorf("redisstore: thread %s/%s: %w", uid, thread, err)
	}
	defer s.life.Exit()
	if limit <= 0 {
		return nil, nil
	}
	top := "+inf"
	if before > 0 {
		top = "(" + strconv.FormatUint(before, 10)
	}
	b := s.k.base(uid)
	members, err := scriptThread.Run(ctx, s.rdb, []string{b + sufMeta, b + sufLog, b + sufThread + thread, b + sufIncome + thread},
		top, limit).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: thread %s/%s: %w", uid, thread, err)
	}
	out, err := decodeAll(uid, members)
	if err != nil {
		return nil, fmt.Errorf("redisstore: thread %s/%s: %w", uid, thread, err)
	}
	return out, nil
}

// Threads implements inbox.History with one script call: the threads
// index is ordered by newest Seq, so a page costs work for its own threads
// only (plus reading the inbox's read marks).
func (s *Store) Threads(ctx context.Context, uid string, before uint64, limit int) ([]inbox.ThreadSummary, error) {
	if err := s.begin(ctx, uid); err != nil {
		return nil, fmt.Errorf("redisstore: threads %s: %w", uid, err)
	}
	defer s.life.Exit()
	top := "+inf"
	if before > 0 {
		top = "(" + strconv.FormatUint(before, 10)
	}
	count := -1 // Redis: LIMIT 0 -1 is every member
	if limit > 0 {
		count = limit
	}
	b := s.k.base(uid)
	res, err := scriptThreads.Run(ctx, s.rdb, []string{b + sufMeta, b + sufLog, b + sufThreads, b + sufMarks}, top, count).Slice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: threads %s: %w", uid, err)
	}
	out, err := parseThreads(uid, res)
	if err != nil {
		return nil, fmt.Errorf("redisstore: threads %s: %w", uid, err)
	}
	return out, nil
}

// parseThreads reads the reply of scriptThreads: thread, newest message,
// read mark, unread count, for each thread.
func parseThreads(uid string, res []any) ([]inbox.ThreadSummary, error) {
	if len(res)%4 != 0 {
		return nil, fmt.Errorf("threads script returned %d values", len(res))
	}
	if len(res) == 0 {
		return nil, nil
	}
	out := make([]inbox.ThreadSummary, len(res)/4)
	for i := range out {
		th, ok1 := res[4*i].(string)
		mem, ok2 := res[4*i+1].(string)
		mark, ok3 := res[4*i+2].(string)
		unread, ok4 := res[4*i+3].(int64)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return nil, fmt.Errorf("threads script returned %v", res[4*i:4*i+4])
		}
		sum := &out[i]
		sum.Thread, sum.Unread = th, int(unread)
		var err error
		if sum.ReadMark, err = strconv.ParseUint(mark, 10, 64); err != nil {
			return nil, fmt.Errorf("read mark of %q: %w", th, err)
		}
		sum.Last.UID = uid
		if err := decodeMember(mem, &sum.Last); err != nil {
			return nil, fmt.Errorf("newest message of %q: %w", th, err)
		}
	}
	return out, nil
}

// MarkRead implements inbox.History with one script call that compares
// and sets atomically.
func (s *Store) MarkRead(ctx context.Context, uid, thread string, seq uint64) error {
	if err := s.begin(ctx, uid); err != nil {
		return fmt.Errorf("redisstore: mark read %s/%s: %w", uid, thread, err)
	}
	defer s.life.Exit()
	key := s.k.base(uid) + sufMarks
	if err := scriptRaise.Run(ctx, s.rdb, []string{key}, thread, strconv.FormatUint(seq, 10)).Err(); err != nil {
		return fmt.Errorf("redisstore: mark read %s/%s: %w", uid, thread, err)
	}
	return nil
}

// ReadMark implements inbox.History with one HGET.
func (s *Store) ReadMark(ctx context.Context, uid, thread string) (uint64, error) {
	if err := s.begin(ctx, uid); err != nil {
		return 0, fmt.Errorf("redisstore: read mark %s/%s: %w", uid, thread, err)
	}
	defer s.life.Exit()
	seq, _, err := s.hgetUint(ctx, s.k.base(uid)+sufMarks, thread)
	if err != nil {
		return 0, fmt.Errorf("redisstore: read mark %s/%s: %w", uid, thread, err)
	}
	return seq, nil
}

// Unread implements inbox.History with one script call, whose work grows
// with the number of threads and of unread notices.
func (s *Store) Unread(ctx context.Context, uid string) (inbox.Unread, error) {
	if err := s.begin(ctx, uid); err != nil {
		return inbox.Unread{}, fmt.Errorf("redisstore: unread %s: %w", uid, err)
	}
	defer s.life.Exit()
	b := s.k.base(uid)
	res, err := scriptUnread.Run(ctx, s.rdb, []string{b + sufMeta, b + sufThreads, b + sufMarks}).Slice()
	if err != nil {
		return inbox.Unread{}, fmt.Errorf("redisstore: unread %s: %w", uid, err)
	}
	u, err := parseUnread(res)
	if err != nil {
		return inbox.Unread{}, fmt.Errorf("redisstore: unread %s: %w", uid, err)
	}
	return u, nil
}

// parseUnread reads the reply of scriptUnread.
func parseUnread(res []any) (inbox.Unread, error) {
	u := inbox.Unread{Threads: map[string]int{}, NoticeTypes: map[int]int{}}
	if len(res) != 2 {
		return u, fmt.Errorf("unread script returned %d values", len(res))
	}
	threads, ok1 := res[0].([]any)
	types, ok2 := res[1].([]any)
	if !ok1 || !ok2 || len(threads)%2 != 0 || len(types)%2 != 0 {
		return u, fmt.Errorf("unread script returned %v", res)
	}
	for i := 0; i < len(threads); i += 2 {
		th, ok1 := threads[i].(string)
		n, ok2 := threads[i+1].(int64)
		if !ok1 || !ok2 {
			return u, fmt.Errorf("unread script returned %v", threads[i:i+2])
		}
		u.Threads[th] = int(n)
		u.Total += int(n)
	}
	for i := 0; i < len(types); i += 2 {
		t, ok1 := types[i].(string)
		n, ok2 := types[i+1].(int64)
		if !ok1 || !ok2 {
			return u, fmt.Errorf("unread script returned %v", types[i:i+2])
		}
		mt, err := strconv.Atoi(t)
		if err != nil {
			return u, fmt.Errorf("notice msgtype %q: %w", t, err)
		}
		u.NoticeTypes[mt] = int(n)
	}
	return u, nil
}

// Delete implements inbox.History with one script call that removes the
// message and its index entries atomically.
func (s *Store) Delete(ctx context.Context, uid string, seq uint64) (ok bool, err error) {
	if err := s.begin(ctx, uid); err != nil {
		return false, fmt.Errorf("redisstore: delete %s seq %d: %w", uid, seq, err)
	}
	defer s.life.Exit()
	if seq == 0 {
		return false, nil
	}
	b := s.k.base(uid)
	n, err := scriptDelete.Run(ctx, s.rdb, []string{b + sufMeta, b + sufLog}, strconv.FormatUint(seq, 10)).Int64()
	if err != nil {
		return false, fmt.Errorf("redisstore: delete %s seq %d: %w", uid, seq, err)
	}
	return n == 1, nil
}

package inbox

import (
	"context"
	"fmt"
	"strconv"
)

// CompareIDs orders two message ids: ids are decimal integers, so a longer
// id is the larger one. It returns -1, 0 or +1.
func CompareIDs(a, b string) int {
	switch {
	case len(a) != len(b):
		if len(a) < len(b) {
			return -1
		}
		return 1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ValidID reports whether s looks like a message id: 1 to 20 decimal
// digits, without leading zeros (ids compare by length first, so "007"
// would sort above "42").
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return false
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

// Finder is what FindByID and SeqAtOrAfterID read: every Store is one.
type Finder interface {
	Bounds(ctx context.Context, uid string) (first, last uint64, err error)
	Read(ctx context.Context, uid string, from uint64, limit int) ([]Message, error)
}

// FindByID looks a message up by id in uid's inbox. ok is false when the
// inbox holds no message with that id.
func FindByID(ctx context.Context, s Finder, uid, id string) (m Message, ok bool, err error) {
	if !ValidID(id) {
		return Message{}, false, nil
	}
	seq, err := SeqAtOrAfterID(ctx, s, uid, id)
	if err != nil {
		return Message{}, false, err
	}
	msgs, err := s.Read(ctx, uid, seq, 1)
	if err != nil {
		return Message{}, false, fmt.Errorf("find %s in %s: %w", id, uid, err)
	}
	if len(msgs) == 0 || msgs[0].ID != id {
		return Message{}, false, nil
	}
	return msgs[0], true, nil
}

// SeqAtOrAfterID returns the Seq of the first message held in uid's inbox
// whose ID is not below id, or one past the last Seq when every held ID is
// below it: every message with a smaller Seq has a smaller ID. Ids increase
// with Seq in every inbox, so a binary search over Seq finds it with
// O(log n) reads, on any Store.
func SeqAtOrAfterID(ctx context.Context, s Finder, uid, id string) (uint64, error) {
	first, last, err := s.Bounds(ctx, uid)
	if err != nil {
		return 0, fmt.Errorf("search %s in %s: %w", id, uid, err)
	}
	answer := last + 1
	lo, hi := first, last
	for lo != 0 && lo <= hi {
		mid := lo + (hi-lo)/2
		msgs, err := s.Read(ctx, uid, mid, 1)
		if err != nil {
			return 0, fmt.Errorf("search %s in %s: %w", id, uid, err)
		}
		switch {
		case len(msgs) == 0 || msgs[0].Seq > hi:
			hi = mid - 1 // nothing held in [mid, hi]
		case CompareIDs(msgs[0].ID, id) >= 0:
			answer, hi = msgs[0].Seq, mid-1
		default:
			lo = msgs[0].Seq + 1
		}
	}
	return answer, nil
}

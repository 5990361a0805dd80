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

// ValidID reports whether s looks like a message id: 1 to 20 decimal digits.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 20 {
		return false
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

// FindByID looks a message up by id in uid's inbox. Ids increase with Seq
// in every inbox, so a binary search over Seq finds it with O(log n) reads,
// on any Store. ok is false when the inbox holds no message with that id.
func FindByID(ctx context.Context, s Store, uid, id string) (m Message, ok bool, err error) {
	if !ValidID(id) {
		return Message{}, false, nil
	}
	first, last, err := s.Bounds(ctx, uid)
	if err != nil {
		return Message{}, false, fmt.Errorf("find %s in %s: %w", id, uid, err)
	}
	lo, hi := first, last
	for lo != 0 && lo <= hi {
		mid := lo + (hi-lo)/2
		msgs, err := s.Read(ctx, uid, mid, 1)
		if err != nil {
			return Message{}, false, fmt.Errorf("find %s in %s: %w", id, uid, err)
		}
		if len(msgs) == 0 || msgs[0].Seq > hi {
			// Nothing held in [mid, hi]: retention dropped it meanwhile.
			hi = mid - 1
			continue
		}
		switch c := CompareIDs(msgs[0].ID, id); {
		case c == 0:
			return msgs[0], true, nil
		case c < 0:
			lo = msgs[0].Seq + 1
		default:
			hi = mid - 1
		}
	}
	return Message{}, false, nil
}

package inbox

import (
	"context"
	"errors"
)

// Blocks keeps each user's block list: the uids whose direct messages the
// user refuses. It lives in the store, beside the inboxes, so a block
// survives a restart and holds on every node sharing the store.
type Blocks interface {
	// Block adds blocked to uid's list. When max > 0 and the list already
	// holds max uids, it returns an error wrapping ErrTooManyBlocks and
	// changes nothing; blocking a uid already listed always succeeds.
	// added is false when blocked was listed already.
	Block(ctx context.Context, uid, blocked string, max int) (added bool, err error)

	// Unblock removes blocked from uid's list; removed is false when it
	// was not listed.
	Unblock(ctx context.Context, uid, blocked string) (removed bool, err error)

	// BlockList returns uid's list in byte order (empty, never nil, when
	// none is listed).
	BlockList(ctx context.Context, uid string) ([]string, error)

	// IsBlocked reports whether uid's list holds peer. It is on the path of
	// every direct message: one point read.
	IsBlocked(ctx context.Context, uid, peer string) (bool, error)
}

// ErrTooManyBlocks is returned by Block when the list is full.
var ErrTooManyBlocks = errors.New("block list is full")

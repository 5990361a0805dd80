package inbox

import (
	"fmt"
	"time"
)

// Layout of a message id, from the most significant bit down: 41 bits of
// milliseconds since 2024-01-01T00:00:00Z, 10 bits of node id, 12 bits of
// sequence within the millisecond. The top bit stays 0 until 2093.
const (
	idEpochMs = 1704067200000 // 2024-01-01T00:00:00Z in Unix milliseconds

	idNodeBits = 10
	idSeqBits  = 12

	idMaxNode = 1<<idNodeBits - 1
	idMaxSeq  = 1<<idSeqBits - 1
)

// IDGen issues message ids: uint64s rendered in decimal as Message.ID.
//
// Ids from one IDGen are strictly increasing, even when the wall clock
// steps back (the generator keeps to its last id's millisecond and counts
// on) or more than 4096 ids are asked for in one millisecond (it moves on
// to the next millisecond logically). Ids from generators with distinct
// node ids never collide.
//
// Ids are 18 decimal digits until mid-2031 and 19 after that, so compare
// them as integers, never as strings.
//
// An IDGen is not safe for concurrent use: the caller serialises Next,
// typically under the lock that also orders its writes.
type IDGen struct {
	node uint64
	last uint64
}

// NewIDGen returns a generator for node (0..1023) whose next id is greater
// than last. Pass the last id issued before a restart, or 0. It panics when
// node is out of range: that is a configuration error to catch earlier.
func NewIDGen(node int, last uint64) *IDGen {
	if node < 0 || node > idMaxNode {
		panic(fmt.Sprintf("inbox: node id %d out of range 0..%d", node, idMaxNode))
	}
	return &IDGen{node: uint64(node), last: last}
}

// Next returns a new id for an event at now.
func (g *IDGen) Next(now time.Time) uint64 {
	ms := now.UnixMilli() - idEpochMs
	if ms < 0 {
		ms = 0
	}
	id := uint64(ms)<<(idNodeBits+idSeqBits) | g.node<<idSeqBits
	if id <= g.last {
		id = g.after(g.last)
	}
	g.last = id
	return id
}

// after returns the smallest id carrying g's node that is greater than last.
// last may carry another node's bits when it came from a shared store.
func (g *IDGen) after(last uint64) uint64 {
	ms := last >> (idNodeBits + idSeqBits)
	node := last >> idSeqBits & idMaxNode
	seq := last & idMaxSeq
	switch {
	case node < g.node:
		return ms<<(idNodeBits+idSeqBits) | g.node<<idSeqBits
	case node == g.node && seq < idMaxSeq:
		return last + 1
	default:
		return (ms+1)<<(idNodeBits+idSeqBits) | g.node<<idSeqBits
	}
}

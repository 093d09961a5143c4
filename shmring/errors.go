package shmring

import (
	"errors"
	"fmt"
)

var (
	// ErrFull: the ring has no room for the record now; retry after the consumer
	// frees space (Writer does this for you).
	ErrFull = errors.New("shmring: ring full")
	// ErrTooLarge: the payload exceeds the ring's MaxPayload; fragment it (Writer does).
	ErrTooLarge = errors.New("shmring: payload larger than the ring's largest record")
	// ErrInvalid: the caller passed an invalid argument (frame type outside 16..127,
	// BEGIN/END given to a Writer that manages them, bad geometry).
	ErrInvalid = errors.New("shmring: invalid argument")
	// ErrCorrupt: the peer broke PROTOCOL.md §2 (a bad record, head or tail, segment
	// header, or fragment sequence). The session with that peer must end. Errors that
	// wrap it are *CorruptError or *MessageError.
	ErrCorrupt = errors.New("shmring: protocol violation")
	// ErrDoorbell: a doorbell write failed. When TryWrite or Poll returns it, the
	// record was committed or released; only the wakeup was lost.
	ErrDoorbell = errors.New("shmring: doorbell failed")
)

// CorruptError describes a violation found in shared memory.
type CorruptError struct {
	Where  string // "request ring", "response ring" or "segment header"
	Offset uint64 // segment offset of the bad record or field
	Reason string // a fixed phrase, usable as a metric label
	Value  uint64 // the offending value, when there is one
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("shmring: %s corrupt at segment offset %d: %s (value %d)", e.Where, e.Offset, e.Reason, e.Value)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// MessageError describes a fragment sequence that breaks PROTOCOL.md §2.4.
type MessageError struct {
	ID     uint64
	Type   int32
	Reason string // a fixed phrase, usable as a metric label
}

func (e *MessageError) Error() string {
	return fmt.Sprintf("shmring: message id %#x type %d: %s", e.ID, e.Type, e.Reason)
}

// Unwrap returns ErrCorrupt.
func (e *MessageError) Unwrap() error { return ErrCorrupt }

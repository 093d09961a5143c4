// Package shmring implements the data plane of the CovetPy worker protocol
// (workerproto/PROTOCOL.md §2, the binding spec): one shared-memory segment per
// worker holding a header and two lock-free ring buffers, plus eventfd doorbells.
// It moves framed byte records; it knows nothing of HTTP or MessagePack.
//
// # Roles and ownership
//
// The gateway creates the segment (CreateSegment) and hands its memfd and two
// eventfds to the worker, which maps it (OpenSegment). Each ring has producers and
// one consumer:
//
//   - request ring, gateway -> worker: MPSCProducer, used by any number of gateway
//     goroutines at once (claims by compare-and-swap on tail), and one Consumer in
//     the worker;
//   - response ring, worker -> gateway: one SPSCProducer in the worker and one
//     Consumer in the gateway.
//
// All four roles exist in Go so that tests (and Go test workers) can run both ends
// in one process; in production the worker end is Python.
//
// Shared memory is written by the other process, so nothing read from it is
// trusted. Each role keeps its own position in private memory (the consumer's
// head, the SPSC producer's tail) and only publishes it; every length, type,
// reserved word, head and tail it must read is checked (PROTOCOL.md §5), and a
// violation is an error wrapping ErrCorrupt naming the segment offset and the
// reason. No input can make this package panic or touch memory outside the
// segment: indexes are masked with capacity-1, and record bounds are checked
// against the buffer end before any slice is formed.
//
// Writer adds fragmentation (messages larger than one record, streamed bodies) and
// blocking on a full ring; Assembler joins fragments back into whole messages;
// Consumer.Wait, Doorbell and Signal implement the wakeup protocol (§2.5).
//
// # Borrowed payloads
//
// Consumer.Poll hands each Frame to a callback with Payload pointing into the ring.
// That slice is valid only until the callback returns: after the batch the bytes
// are zeroed and the space returned to producers. Its capacity equals its length so
// append cannot scribble on the ring, and a hostile peer may still change its bytes
// while the callback reads them, so decode it with bounds-checked code and copy
// what you keep. Assembler results follow the same rule.
//
// # Memory ordering
//
// Control fields and each record's length word are accessed only with sync/atomic.
// Go's atomic loads are acquire loads and its atomic stores are sequentially
// consistent (XCHG on amd64, STLR on arm64), which gives the three edges the
// protocol needs:
//
//   - Commit: a producer writes type, frame header and payload with plain stores,
//     then stores length atomically; a consumer that loads a non-zero length
//     (acquire) sees the whole record. A producer advances tail (CAS or store)
//     before it commits, so a consumer may check every committed record against a
//     fresh load of tail.
//   - Release: the consumer zeroes the consumed bytes with plain stores, then
//     stores head atomically; a producer that loads that head (acquire) and claims
//     the space finds it zeroed, so an uncommitted record always reads length 0.
//   - Wakeup (§2.5) is Dekker's pattern: each side stores its own flag or data
//     (consumer_sleeping = 1, or a record's length; producer_waiting = 1, or head)
//     and then loads the other side's. Because the store is sequentially
//     consistent it is the required full fence, so at least one side sees the
//     other and no wakeup is lost. The Python worker gets the fence from a locked
//     instruction; if any implementation's fence fails, the doorbell timeouts bound
//     the delay.
//
// The shared layout is little-endian and is accessed with native atomics, so the
// package builds only on little-endian CPUs. The Segment and Doorbell types are
// Linux-only (memfd, eventfd).
package shmring

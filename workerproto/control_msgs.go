package workerproto

import "fmt"

// The control-plane messages (PROTOCOL.md 1.3) and their checks. Their MessagePack
// encoding and decoding is in control_codec.go.

// Version is the protocol version this package speaks.
const Version = 1

// Message type names: the "type" key of every control-plane map (PROTOCOL.md 1.3).
const (
	TypeHello   = "hello"
	TypeWelcome = "welcome"
	TypePing    = "ping"
	TypePong    = "pong"
	TypeDrain   = "drain"
	TypeBye     = "bye"
	TypeError   = "error"
)

// Message is one control-plane message: Hello, Welcome, Ping, Pong, Drain, Bye or
// Error. The set is closed.
type Message interface {
	// Type returns the message's "type" key.
	Type() string
	// appendTo appends the message as a MessagePack map, keys in the spec's order
	// (control_codec.go).
	appendTo(b []byte) ([]byte, error)
}

// Hello is the worker's first message: who it is and what it serves.
type Hello struct {
	Version int     // protocol version; must be 1
	PID     int64   // the worker's pid, in its own pid namespace
	App     string  // 1..64 chars of [A-Za-z0-9_.-]
	Token   string  // shared token for an external worker; may be empty
	Routes  []Route // the route manifest, 0 ..= MaxRoutes routes
	// Descriptors (optional, key "descriptors"): serialized
	// google.protobuf.FileDescriptorProtos, each file once, declaring the
	// app's gRPC services and all they import (PROTOCOL.md 1.3, 2.10). Encoded
	// only when non-empty; the control-frame limit (MaxFrame) bounds them.
	Descriptors [][]byte
}

// Route is one entry of a hello's manifest.
type Route struct {
	Method string // GET POST PUT PATCH DELETE HEAD OPTIONS, or * for any
	Path   string // pattern; starts with '/', at most MaxRoutePath bytes
	Kind   string // http, ws or grpc
	// Options holds per-route options. Known keys: "name" (string), "timeout_ms"
	// (integer), "roles" (array of strings). Decoded values are nil, bool, int64,
	// uint64 (only above math.MaxInt64), float64, string, []byte, []any or
	// map[string]any. Encoding writes keys in sorted order.
	Options map[string]any
}

// Welcome is the gateway's answer to a valid hello; it travels with the segment memfd
// and the two doorbell eventfds (SendWelcome).
type Welcome struct {
	Version      int
	WorkerID     int64
	Epoch        uint64 // non-zero; also stored in the segment header
	SegmentSize  int64
	ReqCapacity  int64
	RespCapacity int64
	HeartbeatMS  int64
}

// Ping asks the peer to answer Pong with the same Seq.
type Ping struct{ Seq uint64 }

// Pong answers a Ping.
type Pong struct{ Seq uint64 }

// Drain asks the worker to finish in-flight work within DeadlineMS and accept none.
type Drain struct{ DeadlineMS int64 }

// Bye announces that the worker is leaving; it sends nothing after it.
type Bye struct{ Reason string }

// Error reports a failure to the peer; the sender closes the socket after it. It is
// also a Go error: a received error frame is returned as one (see RecvWelcome).
type Error struct {
	Code    string // version, auth, manifest, conflict, protocol or internal
	Message string
}

// Error implements error for a received error frame.
func (e *Error) Error() string {
	return "workerproto: peer sent error " + e.Code + ": " + e.Message
}

func (Hello) Type() string   { return TypeHello }
func (Welcome) Type() string { return TypeWelcome }
func (Ping) Type() string    { return TypePing }
func (Pong) Type() string    { return TypePong }
func (Drain) Type() string   { return TypeDrain }
func (Bye) Type() string     { return TypeBye }
func (*Error) Type() string  { return TypeError }

// Segment geometry bounds (PROTOCOL.md 2.1).
const (
	SegmentHeaderSize = 4096
	RingControlSize   = 1024
	MinRingCapacity   = 4096
	MaxRingCapacity   = 1 << 30
)

// Validate checks a welcome as the worker must before mapping the segment: version
// 1, epoch non-zero, both capacities powers of two in 4096 ..= 1 GiB, segment_size
// equal to the geometry of PROTOCOL.md 2.1, heartbeat_ms > 0.
func (w *Welcome) Validate() error {
	if w.Version != Version {
		return fmt.Errorf("%w: welcome version %d (this worker speaks %d)", ErrVersion, w.Version, Version)
	}
	if w.Epoch == 0 {
		return fmt.Errorf("%w: welcome epoch is zero", ErrProtocol)
	}
	for _, c := range [...]struct {
		name string
		v    int64
	}{{"req_capacity", w.ReqCapacity}, {"resp_capacity", w.RespCapacity}} {
		if c.v < MinRingCapacity || c.v > MaxRingCapacity || c.v&(c.v-1) != 0 {
			return fmt.Errorf("%w: welcome %s %d is not a power of two in %d..%d", ErrProtocol, c.name, c.v, MinRingCapacity, MaxRingCapacity)
		}
	}
	if want := SegmentHeaderSize + 2*RingControlSize + w.ReqCapacity + w.RespCapacity; w.SegmentSize != want {
		return fmt.Errorf("%w: welcome segment_size %d, geometry gives %d", ErrProtocol, w.SegmentSize, want)
	}
	if w.HeartbeatMS <= 0 {
		return fmt.Errorf("%w: welcome heartbeat_ms %d is not positive", ErrProtocol, w.HeartbeatMS)
	}
	return nil
}

// Package workerproto is the wire contract between the CovetPy gateway and its worker
// processes: frame type numbers, the control-plane messages (hello, welcome, ping,
// pong, drain, bye, error) with their framing and handshake over a Unix stream
// socket, route-manifest validation, and the MessagePack payloads carried by
// data-plane frames (REQ_HEAD, RESP_HEAD, EARLY_HINTS, ERROR, WINDOW).
//
// PROTOCOL.md in this directory is the binding specification; the golden vectors in
// testdata/ are shared with the Python SDK. Where this code and PROTOCOL.md disagree,
// the code is wrong.
//
// The package is a leaf: it imports neither shmring, router nor gateway. It knows the
// numbers that name frames but nothing of the rings that carry them.
//
// # Codec shape
//
// Every codec follows one shape: a Parse/Decode function takes bytes and returns the
// value (and, for frames, how many bytes it consumed) or an error; an Append method
// appends the encoding to a caller-owned buffer. Decoders never panic, whatever the
// input: everything read from a peer is untrusted. A prefix of a valid frame gives
// ErrTruncated ("need more bytes").
//
// One hand-written MessagePack reader and set of appenders (mp.go) serve both
// planes: the data-plane payloads (payload.go) and the control-plane messages,
// which are declared in control_msgs.go and encoded and decoded in
// control_codec.go. vmihailenco/msgpack appears only in the tests, as an
// independent reference the codec must agree with byte for byte.
//
// # Errors
//
// Every error of this package wraps one of the Err* sentinels (all prefixed
// "workerproto:"); ErrorCode maps an error to the code of the control-plane error
// frame that reports it ("version", "auth", "manifest", "protocol", "internal").
// Errors about one route are *ManifestError values, which name the route's index,
// method and path.
//
// # Ownership
//
// Decoded values never alias the input buffer unless a function says so: ParseFrame
// and DecodeMessage copy strings out, DecodeRequestHead copies, and
// ResponseHead.Decode and EarlyHints.Decode copy the payload into the value's own
// arena (reused across calls), so a buffer handed to a decoder may be reused as soon as it returns.
package workerproto

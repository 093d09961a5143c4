package grpcgw

import (
	"strconv"

	"github.com/covetpy/covetpy/workerproto"
)

// Code is a gRPC status code (grpc/grpc doc/statuscodes.md).
type Code int

// The gRPC status codes.
const (
	OK                 Code = 0
	Canceled           Code = 1
	Unknown            Code = 2
	InvalidArgument    Code = 3
	DeadlineExceeded   Code = 4
	NotFound           Code = 5
	AlreadyExists      Code = 6
	PermissionDenied   Code = 7
	ResourceExhausted  Code = 8
	FailedPrecondition Code = 9
	Aborted            Code = 10
	OutOfRange         Code = 11
	Unimplemented      Code = 12
	Internal           Code = 13
	Unavailable        Code = 14
	DataLoss           Code = 15
	Unauthenticated    Code = 16
)

var codeNames = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// String is the code's canonical name, e.g. "UNAVAILABLE" (a metric label).
func (c Code) String() string {
	if c >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "CODE_" + strconv.Itoa(int(c))
}

// EncodeMessage percent-encodes a status message for the grpc-message field
// (gRPC's HTTP/2 protocol: every byte outside 0x20..0x7E, and '%', as %XX of
// the UTF-8 bytes).
func EncodeMessage(msg string) string {
	n := 0
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < 0x20 || c > 0x7e || c == '%' {
			n++
		}
	}
	if n == 0 {
		return msg
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(msg)+2*n)
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

// StatusFields appends the grpc-status and (for a non-empty msg) grpc-message
// fields of a status to dst.
func StatusFields(dst []workerproto.Header, code Code, msg string) []workerproto.Header {
	dst = append(dst, workerproto.Header{Name: []byte("grpc-status"), Value: strconv.AppendInt(nil, int64(code), 10)})
	if msg != "" {
		dst = append(dst, workerproto.Header{Name: []byte("grpc-message"), Value: []byte(EncodeMessage(msg))})
	}
	return dst
}

package workerproto

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sentinel errors. Every error returned by this package wraps one of them; test with
// errors.Is.
var (
	// Framing (PROTOCOL.md 1.2).
	ErrTruncated     = errors.New("workerproto: truncated (need more bytes)")
	ErrFrameTooLarge = errors.New("workerproto: frame length over 1 MiB")
	ErrZeroLength    = errors.New("workerproto: frame length is zero")
	ErrTrailingBytes = errors.New("workerproto: trailing bytes after the MessagePack value")

	// Content of a control message or payload.
	ErrMalformed   = errors.New("workerproto: malformed MessagePack")
	ErrUnknownType = errors.New("workerproto: unknown message type")
	ErrMissingKey  = errors.New("workerproto: missing key")
	ErrWrongType   = errors.New("workerproto: wrong MessagePack type")
	ErrBadValue    = errors.New("workerproto: value out of range")
	ErrLimit       = errors.New("workerproto: limit exceeded")

	// Handshake and session outcomes; each maps to an error-frame code (ErrorCode).
	ErrVersion  = errors.New("workerproto: unsupported protocol version") // code "version"
	ErrAuth     = errors.New("workerproto: peer or token refused")        // code "auth"
	ErrManifest = errors.New("workerproto: malformed route manifest")     // code "manifest"
	ErrProtocol = errors.New("workerproto: protocol violation")           // code "protocol"

	// File descriptors passed with SCM_RIGHTS (PROTOCOL.md 1.4).
	ErrFDCount       = errors.New("workerproto: welcome must carry exactly 3 file descriptors")
	ErrUnexpectedFDs = errors.New("workerproto: file descriptors sent with a frame other than welcome")

	// ErrUnexpectedMessage: a well-formed message arrived where the handshake expects
	// another one.
	ErrUnexpectedMessage = errors.New("workerproto: unexpected message")
)

// Error-frame codes (PROTOCOL.md 1.3).
const (
	CodeVersion  = "version"
	CodeAuth     = "auth"
	CodeManifest = "manifest"
	CodeConflict = "conflict"
	CodeProtocol = "protocol"
	CodeInternal = "internal"
)

// ErrorCode returns the error-frame code that reports err to the peer: "version",
// "auth", "manifest", "protocol" (any framing or decoding failure) or "internal".
func ErrorCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrVersion):
		return CodeVersion
	case errors.Is(err, ErrAuth):
		return CodeAuth
	case errors.Is(err, ErrManifest):
		return CodeManifest
	case errors.Is(err, ErrProtocol), errors.Is(err, ErrTruncated), errors.Is(err, ErrFrameTooLarge),
		errors.Is(err, ErrZeroLength), errors.Is(err, ErrTrailingBytes), errors.Is(err, ErrMalformed),
		errors.Is(err, ErrUnknownType), errors.Is(err, ErrMissingKey), errors.Is(err, ErrWrongType),
		errors.Is(err, ErrBadValue), errors.Is(err, ErrLimit), errors.Is(err, ErrFDCount),
		errors.Is(err, ErrUnexpectedFDs), errors.Is(err, ErrUnexpectedMessage):
		return CodeProtocol
	}
	return CodeInternal
}

// FieldError reports a problem with one key of a control message or one element of a
// data-plane payload. Err is ErrMissingKey, ErrWrongType, ErrBadValue, ErrLimit or
// ErrMalformed.
type FieldError struct {
	Where  string // "hello", "welcome", "route", "req_head", ...
	Field  string // key or element name, e.g. "app" or "headers[3]"
	Err    error
	Detail string // e.g. "want int, got str"; may be empty
}

func (e *FieldError) Error() string { return "workerproto: " + e.Where + ": " + e.problem() }

func (e *FieldError) problem() string {
	s := strings.TrimPrefix(e.Err.Error(), "workerproto: ") + " " + strconv.Quote(e.Field)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *FieldError) Unwrap() error { return e.Err }

// ManifestError reports one bad route of a hello's manifest (or the manifest as a
// whole when Index is -1). It wraps ErrManifest and, where there is one, the cause.
// Its message names the route, e.g.
//
//	workerproto: route 3 (POST /users): duplicate of route 1
type ManifestError struct {
	Index   int    // route index, or -1 for the manifest as a whole
	Method  string // the route's method as sent, if it was readable
	Path    string // the route's path as sent, if it was readable
	Problem string
	Err     error // optional cause (a *FieldError or sentinel)
}

func (e *ManifestError) Error() string {
	if e.Index < 0 {
		return "workerproto: manifest: " + e.problem()
	}
	s := "workerproto: route " + strconv.Itoa(e.Index)
	if e.Method != "" || e.Path != "" {
		s += " (" + printable(e.Method, 16) + " " + printable(e.Path, 80) + ")"
	}
	return s + ": " + e.problem()
}

func (e *ManifestError) problem() string {
	if e.Problem != "" {
		return e.Problem
	}
	var fe *FieldError
	if errors.As(e.Err, &fe) {
		return fe.problem()
	}
	if e.Err != nil {
		return strings.TrimPrefix(e.Err.Error(), "workerproto: ")
	}
	return "invalid"
}

func (e *ManifestError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrManifest, e.Err}
	}
	return []error{ErrManifest}
}

// printable returns s for an error message: as is when it is short printable ASCII,
// else quoted and cut to max bytes.
func printable(s string, max int) string {
	plain := len(s) <= max
	for i := 0; plain && i < len(s); i++ {
		plain = s[i] > ' ' && s[i] < 0x7f
	}
	if plain {
		return s
	}
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

func fieldErr(where, field string, err error, format string, args ...any) error {
	d := format
	if len(args) > 0 {
		d = fmt.Sprintf(format, args...)
	}
	return &FieldError{Where: where, Field: field, Err: err, Detail: d}
}

package http1

import (
	"errors"
	"strconv"
)

// Sentinel errors. Parse rejections are *Error values, not sentinels.
var (
	// ErrNeedMore is returned by Parser.Next when b holds no complete
	// event. Nothing was consumed (n == 0): call Next again with the same
	// unconsumed bytes followed by more. It is never a protocol error.
	ErrNeedMore = errors.New("http1: need more data")
	// ErrClosed is returned by Parser.Next after a message that ends the
	// connection (Connection: close, an HTTP/1.0 request without
	// keep-alive) has been fully parsed: bytes after it are not parsed.
	ErrClosed = errors.New("http1: connection closing after last message")
	// ErrInvalidStatus: a response status outside 100..999.
	ErrInvalidStatus = errors.New("http1: invalid response status")
	// ErrInvalidField: a response header or trailer with a name that is not
	// a token or a value holding CR, LF, NUL or another CTL but HTAB.
	ErrInvalidField = errors.New("http1: invalid response field")
	// ErrReservedField: a response header the writer owns (Content-Length,
	// Transfer-Encoding, and Connection except in 1xx responses).
	ErrReservedField = errors.New("http1: response field is set by the writer")
)

// Error is a request the parser rejects. Status is the response status to
// send (AppendError renders it), Reason a stable snake_case label fit for a
// metrics counter, and Close whether the connection must be closed after the
// error response. When Close is false the rejected message's head was
// consumed, it declared no body, and the Parser is ready for the next
// request on the same connection.
type Error struct {
	Status int
	Reason string
	Close  bool
}

func (e *Error) Error() string {
	return "http1: " + strconv.Itoa(e.Status) + " " + e.Reason
}

func newErr(status int, reason string) *Error {
	e := &Error{Status: status, Reason: reason, Close: true}
	allErrors = append(allErrors, e)
	return e
}

var allErrors []*Error

// Request-line errors. Every rejection below closes the connection except
// the "semantic" ones found after a complete, well-framed head (see keepOpen).
var (
	errInvalidMethod      = newErr(400, "invalid_method")
	errRequestLineTooLong = newErr(414, "request_line_too_long")
	errBareLF             = newErr(400, "bare_lf")
	errBareCR             = newErr(400, "bare_cr")
	errInvalidRequestLine = newErr(400, "invalid_request_line")
	errInvalidTarget      = newErr(400, "invalid_target")
	errInvalidTargetForm  = newErr(400, "invalid_target_form")
	errInvalidVersion     = newErr(400, "invalid_version")
	errUnsupportedVersion = newErr(505, "unsupported_version")

	errObsFold           = newErr(400, "obs_fold")
	errSpaceBeforeColon  = newErr(400, "space_before_colon")
	errInvalidFieldName  = newErr(400, "invalid_field_name")
	errInvalidFieldValue = newErr(400, "invalid_field_value")
	errHeaderTooLarge    = newErr(431, "header_too_large")
	errTooManyFields     = newErr(431, "too_many_fields")

	errInvalidContentLength    = newErr(400, "invalid_content_length")
	errDuplicateContentLength  = newErr(400, "duplicate_content_length")
	errContentLengthAndTE      = newErr(400, "content_length_with_transfer_encoding")
	errTEInHTTP10              = newErr(400, "transfer_encoding_http10")
	errChunkedNotFinal         = newErr(400, "chunked_not_final")
	errUnsupportedTransferCode = newErr(501, "unsupported_transfer_coding")
	errBodyTooLarge            = newErr(413, "body_too_large")

	errInvalidChunkSize  = newErr(400, "invalid_chunk_size")
	errChunkSizeOverflow = newErr(400, "chunk_size_overflow")
	errChunkExtTooLong   = newErr(400, "chunk_ext_too_long")
	errInvalidChunkExt   = newErr(400, "invalid_chunk_ext")
	errInvalidChunkEnd   = newErr(400, "invalid_chunk_data_end")
	errTrailerTooLarge   = newErr(431, "trailer_too_large")
	errTooManyTrailers   = newErr(431, "too_many_trailer_fields")

	errMissingHost       = newErr(400, "missing_host")
	errDuplicateHost     = newErr(400, "duplicate_host")
	errInvalidHost       = newErr(400, "invalid_host")
	errExpectationFailed = newErr(417, "expectation_failed")
)

// Twins of the semantic errors with Close == false, used when the rejected
// head was complete, declared no body and the connection is keep-alive.
var openTwins = func() map[*Error]*Error {
	m := map[*Error]*Error{}
	for _, e := range []*Error{errMissingHost, errDuplicateHost, errInvalidHost, errExpectationFailed} {
		m[e] = &Error{Status: e.Status, Reason: e.Reason}
	}
	return m
}()

func keepOpen(e *Error) *Error {
	if t := openTwins[e]; t != nil {
		return t
	}
	return e
}

// Reasons lists every Error.Reason the parser can return, for registering
// counters up front.
func Reasons() []string {
	out := make([]string, len(allErrors))
	for i, e := range allErrors {
		out[i] = e.Reason
	}
	return out
}

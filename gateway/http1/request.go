package http1

// Header is one field line: a name and a value with surrounding whitespace
// removed. Both slices point into the arena of the Request that holds them.
type Header struct {
	Name  []byte
	Value []byte
}

// TargetForm is the syntactic form of a request-target (RFC 9112 §3.2).
type TargetForm uint8

const (
	// FormOrigin: absolute-path [ "?" query ], for every method but CONNECT.
	FormOrigin TargetForm = iota
	// FormAbsolute: scheme "://" authority path-abempty [ "?" query ],
	// for every method but CONNECT.
	FormAbsolute
	// FormAuthority: host ":" port, for CONNECT only.
	FormAuthority
	// FormAsterisk: "*", for OPTIONS only.
	FormAsterisk
)

// Request is a parsed request head (and, for chunked bodies, its trailers).
//
// Ownership: every byte slice in a Request points into an arena owned by that
// Request — never into the buffer passed to Parser.Next — so the caller may
// reuse or compact its read buffer as soon as Next returns. The slices stay
// valid until this Request is passed to Parser.Next to receive a new head, or
// Reset is called; to hand a request to another goroutine while the
// connection goes on parsing, hand over the Request itself and parse the next
// head into another one. The arena and the Headers slice are reused, so the
// steady state allocates nothing. Treat the slices as read-only.
type Request struct {
	Method []byte     // method token, case preserved (methods are case-sensitive)
	Target []byte     // request-target exactly as received
	Form   TargetForm // which of the four forms Target has
	// Path is the path of an origin- or absolute-form target, as received:
	// not percent-decoded, dot segments not removed (the router's job).
	// "/" for an absolute-form target with an empty path, and nil for the
	// authority and asterisk forms.
	Path []byte
	// Query is the part after the first '?', without it; nil when the
	// target has no '?' (a trailing "?" gives an empty, non-nil Query).
	Query []byte
	Minor int // HTTP/1.<Minor>; 0 means HTTP/1.0, >= 1 is treated as 1.1
	// Host is the authority the request is for: the authority of an
	// absolute- or authority-form target, otherwise the Host field value
	// (possibly empty, or nil in an HTTP/1.0 request without one).
	Host []byte
	// Headers are the header field lines in order of arrival, duplicates kept.
	Headers []Header
	// Trailers are the trailer fields of a chunked body, filled when Next
	// returns EventEnd. They are exposed as received, never merged into
	// Headers: fields such as Content-Length or Host mean nothing here.
	Trailers []Header

	ContentLength int64 // body length; -1 when Chunked; 0 when no body
	Chunked       bool  // the body uses the chunked transfer coding
	// KeepAlive: the connection may carry another request after this one
	// (HTTP/1.1 without "Connection: close", or HTTP/1.0 with
	// "Connection: keep-alive" and without "close").
	KeepAlive bool
	// ExpectContinue: an HTTP/1.1 request with "Expect: 100-continue". The
	// driver sends AppendContinue before reading the body, or sends a final
	// response and closes the connection (or reads and discards the body).
	ExpectContinue bool
	// Upgrade: the Connection field lists "upgrade" (WebSocket, h2c). The
	// parser does not switch protocols; after EventEnd the driver may.
	Upgrade bool

	arena []byte
}

// Reset clears r, keeping its storage for reuse.
func (r *Request) Reset() {
	arena, hs, ts := r.arena[:0], r.Headers[:0], r.Trailers[:0]
	*r = Request{arena: arena, Headers: hs, Trailers: ts}
}

// IsHead reports whether the method is HEAD.
func (r *Request) IsHead() bool { return string(r.Method) == "HEAD" }

// KnownMethod returns m as a constant string if it is one of the methods RFC 9110
// and RFC 5789 register (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, CONNECT,
// TRACE). A constant is safe to keep (a metric label, a log field) and costs no
// allocation; ok is false for any other token.
func KnownMethod(m string) (name string, ok bool) {
	switch m {
	case "GET":
		return "GET", true
	case "HEAD":
		return "HEAD", true
	case "POST":
		return "POST", true
	case "PUT":
		return "PUT", true
	case "PATCH":
		return "PATCH", true
	case "DELETE":
		return "DELETE", true
	case "OPTIONS":
		return "OPTIONS", true
	case "CONNECT":
		return "CONNECT", true
	case "TRACE":
		return "TRACE", true
	}
	return "", false
}

// HasBody reports whether a body follows the head.
func (r *Request) HasBody() bool { return r.Chunked || r.ContentLength > 0 }

// Header returns the value of the first field named name (ASCII
// case-insensitive; name must be lower-case), or nil.
func (r *Request) Header(name string) []byte {
	for i := range r.Headers {
		if equalFold(r.Headers[i].Name, name) {
			return r.Headers[i].Value
		}
	}
	return nil
}

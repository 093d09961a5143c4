// Package http1 is CovetPy's sans-IO HTTP/1.1 codec (RFC 9110, RFC 9112):
// a server-side request parser and an append-style response writer that
// work on byte slices and never touch a net.Conn. A connection driver
// (gateway/server, on either socket engine of gateway/engine) owns the
// socket, the buffers and the timers, and feeds the bytes it reads to a
// Parser.
//
// # Parsing
//
// One Parser per connection. The driver calls Next with the bytes it holds
// that have not been consumed yet; Next returns an Event and how many bytes
// it consumed:
//
//	for {
//		ev, n, err := p.Next(buf, req)
//		buf = buf[n:]
//		switch {
//		case err == http1.ErrNeedMore: // read more, append, call again
//		case err != nil: // *http1.Error: AppendError, close if e.Close; or ErrClosed
//		case ev.Kind == http1.EventHead: // req is ready; dispatch it
//		case ev.Kind == http1.EventBody: // ev.Data: next body bytes
//		case ev.Kind == http1.EventEnd: // message done (trailers in req)
//		}
//	}
//
// Supported: keep-alive and pipelining (several requests in one buffer,
// parsed in order; the driver answers them in order); Content-Length and
// chunked bodies (chunk extensions validated, bounded and ignored; trailers
// bounded and exposed in Request.Trailers); HEAD; Expect: 100-continue
// (Request.ExpectContinue, answered with AppendContinue); Connection tokens
// close, keep-alive and upgrade in comma lists, case-insensitive; HTTP/1.0
// (close unless "Connection: keep-alive"); HTTP/1.x with x > 1 served as
// HTTP/1.1; the four request-target forms (origin; absolute, whose
// authority becomes Request.Host; authority for CONNECT only; asterisk for
// OPTIONS only); empty lines before a request line are ignored.
//
// Parsing is incremental: every truncated prefix of a valid stream yields
// ErrNeedMore with nothing consumed (never an error), and feeding the same
// bytes in any split gives the same events and the same errors. After
// ErrNeedMore the next call must pass the same bytes followed by more; the
// parser resumes where it stopped, so byte-at-a-time input costs linear
// time. A head or trailer section is consumed only when complete, so the
// driver's buffer must hold MaxRequestLine + MaxHeaderBytes + 2 bytes; a
// head that would outgrow the limits is rejected as soon as it does.
//
// # Rejections
//
// Every rejection is an *Error carrying the status to answer, a stable
// Reason for a counter (Reasons lists them all) and Close. The parser is
// strict where leniency enables request smuggling or header injection:
//
//	400 close  Content-Length together with Transfer-Encoding
//	400 close  Content-Length that is not one plain decimal (1*DIGIT): a
//	           list, even of equal values ("5, 5"), a sign, inner spaces;
//	           or a second Content-Length line, even an identical one (RFC
//	           9110 §8.6 allows folding equal values; proxies disagree on
//	           it, so it is refused)
//	400 close  Transfer-Encoding whose final coding is not chunked, chunked
//	           twice, or any Transfer-Encoding in HTTP/1.0
//	501 close  a transfer coding other than chunked before the final chunked
//	400 close  invalid or overflowing chunk size, bad chunk extension bytes,
//	           chunk data not followed by CRLF
//	400 close  chunk extensions over MaxChunkExtBytes (summed per message)
//	400 close  bare CR or bare LF anywhere in a head, chunk line or trailer
//	400 close  obs-fold, whitespace before the first field line
//	400 close  whitespace between field name and colon; a field name that is
//	           not a token; a field value with a CTL other than HTAB
//	400 close  invalid method token; malformed request line or version;
//	           request-target with CTL, SP, '#' or non-ASCII bytes; a form the
//	           method does not allow
//	505 close  HTTP major version other than 1
//	414 close  request line over MaxRequestLine
//	431 close  header section over MaxHeaderBytes or MaxHeaderFields fields
//	431 close  trailer section over MaxTrailerBytes or MaxHeaderFields fields
//	413 close  Content-Length or decoded chunked body over MaxBodyBytes
//	400        missing Host (HTTP/1.1), more than one Host, invalid Host
//	417        an expectation other than 100-continue
//
// The last two rows are semantic: the head is complete and well framed, so
// when it declares no body and the connection is keep-alive, Error.Close is
// false, Next has consumed the head and the next request can follow;
// otherwise Close is true. After an error with Close set, Next returns the
// same error forever.
//
// # Limits
//
// Limits bounds everything a peer controls. Zero fields take the defaults:
// request line 8 KiB (DefaultMaxRequestLine), header section 64 KiB
// (DefaultMaxHeaderBytes), 100 fields (DefaultMaxHeaderFields, also for
// trailers), body 10 MiB (DefaultMaxBodyBytes), chunk extensions 4 KiB per
// message (DefaultMaxChunkExtBytes), trailer section 16 KiB
// (DefaultMaxTrailerBytes).
//
// # Buffer lifetimes
//
// Nothing the parser returns keeps the driver's buffer alive beyond what
// the driver chooses:
//
//   - A head (and later its trailers) is copied into an arena owned by the
//     *Request passed to Next. Its byte slices stay valid until that Request
//     receives another head or is Reset, whatever happens to the read
//     buffer. To keep a request while parsing the next one (pipelining,
//     handing it to a worker), parse the next one into another Request. The
//     arena and header slice are reused, so the steady state allocates
//     nothing (TestZeroAllocSteadyState).
//   - EventBody data aliases the b given to Next (zero copy); it is the
//     driver's memory and lives as long as the driver keeps it.
//   - The Parser keeps only offsets between calls, never b itself.
//
// # Timeouts
//
// Slow-client timeouts belong to the driver, which owns the clock.
// Parser.State tells it which one applies: StateIdle (idle keep-alive
// timeout), StateHead (header-read deadline, started at the first byte),
// StateBody (body minimum rate or deadline; the driver counts bytes),
// StateClosed (write the response, then close).
//
// # Writing
//
// ResponseHead.Append serializes a status line and header section for a
// given request and returns the body Framing: Content-Length (also on HEAD,
// with no body), chunked (AppendChunk, AppendChunkHeader/AppendChunkEnd for
// writev, AppendLastChunk with optional trailers), or close-delimited for
// an HTTP/1.0 client; it adds Connection: close when the request, the
// handler or the framing demands it, and rejects fields that would split
// the response. AppendContinue writes the 100-continue interim response,
// AppendError a small text/plain response for an *Error, and DateCache the
// Date value, formatted once per second.
package http1

package http1

import "bytes"

// EventKind says what Parser.Next found.
type EventKind uint8

const (
	// EventHead: a request head was parsed into the *Request given to Next.
	EventHead EventKind = iota + 1
	// EventBody: Event.Data holds the next decoded body bytes.
	EventBody
	// EventEnd: the current message is complete (trailers, if any, are in
	// its Request). Every EventHead is followed by exactly one EventEnd.
	EventEnd
)

func (k EventKind) String() string {
	switch k {
	case EventHead:
		return "head"
	case EventBody:
		return "body"
	case EventEnd:
		return "end"
	}
	return "none"
}

// Event is one step of a request stream.
type Event struct {
	Kind EventKind
	// Data is set for EventBody: decoded body bytes, never empty. It aliases
	// the b passed to Next (zero copy): it is the caller's buffer, valid for
	// as long as the caller keeps those bytes.
	Data []byte
}

// State is where a connection stands, for the driver's slow-client timers.
type State uint8

const (
	// StateIdle: between messages with no byte of the next one seen — the
	// idle keep-alive timeout applies.
	StateIdle State = iota
	// StateHead: part of a head has arrived — the header-read deadline applies.
	StateHead
	// StateBody: EventHead was returned and EventEnd not yet — the body
	// minimum-rate (or body deadline) rule applies.
	StateBody
	// StateClosed: the parser will parse nothing more (a closing message
	// ended, or a rejection with Error.Close); close after responding.
	StateClosed
)

func (s State) String() string {
	return [...]string{"idle", "head", "body", "closed"}[s]
}

// internal states
const (
	stHead       uint8 = iota // between messages or inside a head
	stBodyLength              // Content-Length body, p.remaining bytes left
	stChunkSize               // first chunk-size line expected
	stChunkData               // inside chunk data, p.remaining bytes left
	stChunkCRLF               // CRLF after chunk data, then a chunk-size line
	stEnd                     // message complete, EventEnd pending
	stClosed                  // no more messages
)

type fieldPos struct{ ns, ne, vs, ve int32 }

// Parser is the server side of an HTTP/1.1 connection: a sans-IO state
// machine turning the bytes a client sends into Events. It never reads or
// writes a socket and never retains the caller's buffer between calls.
//
// A Parser is owned by one connection and is not safe for concurrent use.
// The zero value is ready to use with default Limits.
type Parser struct {
	lim   Limits
	ready bool
	st    uint8
	err   *Error   // sticky connection-fatal error
	cur   *Request // request whose body or trailers are being parsed
	// detached: Detach dropped cur mid-message; detachedKeep is its
	// KeepAlive, for endMessage.
	detached, detachedKeep bool

	// Incremental field-section scan. Offsets are relative to b[0], the
	// first unconsumed byte; they survive ErrNeedMore because the caller
	// re-presents the same bytes with more appended.
	pos         int // start of the next unprocessed line
	scan        int // bytes before this hold no unprocessed LF
	started     bool
	rlDone      bool
	fieldsStart int
	fields      []fieldPos
	secLimit    int
	secCount    int

	// request line
	mS, mE, tS, tE int
	minor          int
	form           TargetForm

	// header facts
	hostCount   int
	hostIdx     int
	clSeen      bool
	cl          int64
	teSeen      bool
	teLastChunk bool
	teChunkedN  int
	teUnknown   bool
	connClose   bool
	connKeep    bool
	connUpgrade bool
	expect      bool
	expectBad   bool

	// body
	remaining  int64
	bodyTotal  int64
	extUsed    int
	sizeParsed bool // chunk-size line at sizeStart..sizeEnd parsed
	sizeEnd    int
	chunkSize  int64
}

// NewParser returns a Parser enforcing l (zero fields take defaults). It
// panics if l.Validate fails: limits are configuration, checked at startup.
func NewParser(l Limits) *Parser {
	if err := l.Validate(); err != nil {
		panic(err)
	}
	return &Parser{lim: l.WithDefaults(), ready: true}
}

// Reset prepares p for a new connection, keeping its limits and storage.
func (p *Parser) Reset() {
	lim, fields := p.lim, p.fields[:0]
	*p = Parser{lim: lim, ready: p.ready, fields: fields}
}

// State reports where the connection stands (see State).
func (p *Parser) State() State {
	switch p.st {
	case stHead:
		if p.started {
			return StateHead
		}
		return StateIdle
	case stClosed:
		return StateClosed
	}
	return StateBody
}

// BodyRemaining reports how many bytes of a Content-Length body are still to
// come; 0 when the parser is not inside one (a chunked body included). A
// caller may read up to that many bytes into a buffer of its own and pass
// them to Next, which then returns them whole as one EventBody: the body
// need not go through the connection's read buffer.
func (p *Parser) BodyRemaining() int64 {
	if p.st == stBodyLength {
		return p.remaining
	}
	return 0
}

// Detach makes the parser forget the Request of the message whose body it is
// parsing, so that the caller may hand that Request to another goroutine while
// the body is still being read: the message's trailers are then checked but not
// stored. The message's keep-alive decision is kept.
func (p *Parser) Detach() {
	if p.cur != nil {
		p.detachedKeep, p.detached, p.cur = p.cur.KeepAlive, true, nil
	}
}

// Next parses the next event from b, the unconsumed bytes received so far,
// and returns it with n, the number of bytes of b it consumed. The caller
// drops b[:n] and calls Next again with what is left plus whatever arrives.
//
// When b holds no complete event Next returns ErrNeedMore with n == 0; the
// next call must pass the same bytes followed by more (the parser remembers
// how far it has already validated). A peer error is an *Error: when its
// Close is set the parser is finished and every later call returns it.
// After a message that ends the connection, Next returns ErrClosed.
//
// req receives the head when Next returns EventHead (its previous contents
// are discarded). It is only used when a new message starts and may be nil
// otherwise. Trailers of a chunked body are stored in the Request that
// received the head.
//
// Heads and trailers must arrive whole within the limits, so the caller's
// buffer needs room for MaxRequestLine+MaxHeaderBytes+2 bytes; the parser
// rejects a head before it outgrows that, so it never asks for more.
func (p *Parser) Next(b []byte, req *Request) (Event, int, error) {
	if !p.ready {
		p.lim = p.lim.WithDefaults()
		p.ready = true
	}
	switch p.st {
	case stHead:
		return p.head(b, req)
	case stBodyLength:
		if len(b) == 0 {
			return Event{}, 0, ErrNeedMore
		}
		k := len(b)
		if int64(k) > p.remaining {
			k = int(p.remaining)
		}
		p.remaining -= int64(k)
		if p.remaining == 0 {
			p.st = stEnd
		}
		return Event{Kind: EventBody, Data: b[:k:k]}, k, nil
	case stChunkSize, stChunkCRLF:
		return p.chunk(b)
	case stChunkData:
		if len(b) == 0 {
			return Event{}, 0, ErrNeedMore
		}
		k := len(b)
		if int64(k) > p.remaining {
			k = int(p.remaining)
		}
		p.remaining -= int64(k)
		if p.remaining == 0 {
			p.st = stChunkCRLF
		}
		return Event{Kind: EventBody, Data: b[:k:k]}, k, nil
	case stEnd:
		p.endMessage()
		return Event{Kind: EventEnd}, 0, nil
	}
	if p.err != nil {
		return Event{}, 0, p.err
	}
	return Event{}, 0, ErrClosed
}

func (p *Parser) fail(e *Error) (Event, int, error) {
	p.err = e
	p.st = stClosed
	p.cur, p.detached = nil, false
	return Event{}, 0, e
}

func (p *Parser) endMessage() {
	keep := true
	switch {
	case p.cur != nil:
		keep = p.cur.KeepAlive
	case p.detached:
		keep = p.detachedKeep
	}
	p.cur, p.detached = nil, false
	p.resetHead()
	if keep {
		p.st = stHead
	} else {
		p.st = stClosed
	}
}

func (p *Parser) resetHead() {
	fields := p.fields[:0]
	lim, ready := p.lim, p.ready
	*p = Parser{lim: lim, ready: ready, fields: fields}
}

// beginSection starts scanning a field section (header or trailer) at off.
func (p *Parser) beginSection(off, limit int) {
	p.fieldsStart, p.pos, p.scan = off, off, off
	p.secLimit, p.secCount = limit, 0
	p.fields = p.fields[:0]
}

// head scans the head line by line, validating each line once as it
// completes; errors are found in byte order whatever the split of the input.
func (p *Parser) head(b []byte, req *Request) (Event, int, error) {
	if p.pos > len(b) || p.scan > len(b) {
		p.resetHead() // contract broken (shorter b than last time): start over
	}
	if len(b) > 0 {
		p.started = true
	}
	for {
		if !p.rlDone && p.pos < len(b) {
			if c := b[p.pos]; c != '\r' && c != '\n' && !isTchar(c) {
				return p.fail(errInvalidMethod) // TLS hello, binary garbage
			}
		}
		i := bytes.IndexByte(b[p.scan:], '\n')
		if i < 0 {
			p.scan = len(b)
			if !p.rlDone {
				if len(b) > p.lim.MaxRequestLine+1 {
					return p.fail(errRequestLineTooLong)
				}
			} else if len(b)-p.fieldsStart > p.lim.MaxHeaderBytes {
				return p.fail(errHeaderTooLarge)
			}
			return Event{}, 0, ErrNeedMore
		}
		lf := p.scan + i
		start := p.pos
		p.pos, p.scan = lf+1, lf+1
		if !p.rlDone {
			if lf-1 > p.lim.MaxRequestLine {
				return p.fail(errRequestLineTooLong)
			}
			if lf == start || b[lf-1] != '\r' {
				return p.fail(errBareLF)
			}
			if lf-1 == start {
				continue // empty line before the request line (RFC 9112 §2.2)
			}
			if e := p.requestLine(b, start, lf-1); e != nil {
				return p.fail(e)
			}
			p.rlDone = true
			p.beginSection(lf+1, p.lim.MaxHeaderBytes)
			continue
		}
		done, e := p.fieldLine(b, start, lf, false)
		if e != nil {
			return p.fail(e)
		}
		if done {
			return p.finishHead(b, lf+1, req)
		}
	}
}

// fieldLine processes the complete line b[start:lf] of a field section.
// It reports done at the empty line that ends the section.
func (p *Parser) fieldLine(b []byte, start, lf int, trailer bool) (bool, *Error) {
	tooLarge, tooMany := errHeaderTooLarge, errTooManyFields
	if trailer {
		tooLarge, tooMany = errTrailerTooLarge, errTooManyTrailers
	}
	if lf+1-p.fieldsStart > p.secLimit {
		return false, tooLarge
	}
	if lf == start || b[lf-1] != '\r' {
		return false, errBareLF
	}
	line := b[start : lf-1]
	if len(line) == 0 {
		return true, nil
	}
	if bytes.IndexByte(line, '\r') >= 0 {
		return false, errBareCR
	}
	if isOWS(line[0]) {
		return false, errObsFold // obs-fold, or whitespace before the first field
	}
	p.secCount++
	if p.secCount > p.lim.MaxHeaderFields {
		return false, tooMany
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return false, errInvalidFieldName
	}
	name := line[:colon]
	if isOWS(name[len(name)-1]) {
		return false, errSpaceBeforeColon
	}
	if !isToken(name) {
		return false, errInvalidFieldName
	}
	vs, ve := start+colon+1, lf-1
	for vs < ve && isOWS(b[vs]) {
		vs++
	}
	for ve > vs && isOWS(b[ve-1]) {
		ve--
	}
	value := b[vs:ve]
	for _, c := range value {
		if charClass[c]&cFieldVal == 0 {
			return false, errInvalidFieldValue
		}
	}
	p.fields = append(p.fields, fieldPos{int32(start), int32(start + colon), int32(vs), int32(ve)})
	if !trailer {
		if e := p.headerFact(name, value); e != nil {
			return false, e
		}
	}
	return false, nil
}

// headerFact records what the framing and connection logic needs from the
// header fields it recognises.
func (p *Parser) headerFact(name, value []byte) *Error {
	switch len(name) {
	case 4:
		if equalFold(name, "host") {
			p.hostCount++
			p.hostIdx = len(p.fields) - 1
		}
	case 6:
		if equalFold(name, "expect") {
			if equalFold(value, "100-continue") {
				p.expect = true
			} else {
				p.expectBad = true
			}
		}
	case 10:
		if equalFold(name, "connection") {
			forEachListItem(value, func(tok []byte) {
				switch {
				case equalFold(tok, "close"):
					p.connClose = true
				case equalFold(tok, "keep-alive"):
					p.connKeep = true
				case equalFold(tok, "upgrade"):
					p.connUpgrade = true
				}
			})
		}
	case 14:
		if equalFold(name, "content-length") {
			return p.contentLength(value)
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			p.teSeen = true
			forEachListItem(value, func(tok []byte) {
				if p.teLastChunk {
					p.teLastChunk = false // a coding after chunked
				}
				if equalFold(tok, "chunked") {
					p.teChunkedN++
					p.teLastChunk = true
				} else {
					p.teUnknown = true
				}
			})
		}
	}
	return nil
}

// contentLength parses a Content-Length value: exactly one field line
// whose value (OWS already trimmed) is one plain decimal, 1*DIGIT. RFC
// 9110 §8.6 lets a recipient fold a list of identical values ("5, 5") or
// repeated identical lines into one, but proxies in front of the gateway
// disagree about that, and a disagreement about framing is request
// smuggling; so this parser refuses every list, a second Content-Length
// line (even an identical one), a sign, inner whitespace, any other
// non-digit, and a value that overflows int64.
func (p *Parser) contentLength(value []byte) *Error {
	if p.clSeen {
		return errDuplicateContentLength
	}
	if len(value) == 0 || len(value) > 19 {
		return errInvalidContentLength
	}
	var n int64
	for _, c := range value {
		if c < '0' || c > '9' {
			return errInvalidContentLength
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return errInvalidContentLength
		}
		n = n*10 + d
	}
	p.clSeen, p.cl = true, n
	return nil
}

// forEachListItem calls f for each non-empty, OWS-trimmed element of a
// comma-separated list (RFC 9110 §5.6.1: empty elements are ignored).
func forEachListItem(v []byte, f func([]byte)) {
	for len(v) > 0 {
		var elem []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			elem, v = v[:i], v[i+1:]
		} else {
			elem, v = v, nil
		}
		if elem = trimOWS(elem); len(elem) > 0 {
			f(elem)
		}
	}
}

// requestLine parses b[s:e] = method SP request-target SP HTTP-version.
func (p *Parser) requestLine(b []byte, s, e int) *Error {
	line := b[s:e]
	if bytes.IndexByte(line, '\r') >= 0 {
		return errBareCR
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 < 0 {
		for _, c := range line {
			if !isTchar(c) {
				return errInvalidMethod
			}
		}
		return errInvalidRequestLine
	}
	method := line[:sp1]
	if !isToken(method) {
		return errInvalidMethod
	}
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp2 == sp1 {
		return errInvalidRequestLine
	}
	target, version := line[sp1+1:sp2], line[sp2+1:]
	if len(version) != 8 || string(version[:5]) != "HTTP/" || version[6] != '.' ||
		version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9' {
		return errInvalidVersion
	}
	if version[5] != '1' {
		return errUnsupportedVersion
	}
	if len(target) == 0 {
		return errInvalidRequestLine // two spaces in a row
	}
	for _, c := range target {
		if charClass[c]&cTarget == 0 {
			return errInvalidTarget
		}
	}
	connect := string(method) == "CONNECT"
	switch {
	case connect:
		if !validAuthority(target, true) {
			return errInvalidTargetForm
		}
		p.form = FormAuthority
	case target[0] == '/':
		p.form = FormOrigin
	case len(target) == 1 && target[0] == '*':
		if string(method) != "OPTIONS" {
			return errInvalidTargetForm
		}
		p.form = FormAsterisk
	default:
		if _, _, ok := splitAbsolute(target); !ok {
			return errInvalidTargetForm
		}
		p.form = FormAbsolute
	}
	p.mS, p.mE = s, s+sp1
	p.tS, p.tE = s+sp1+1, s+sp2
	p.minor = int(version[7] - '0')
	return nil
}

// splitAbsolute splits an absolute-form target scheme "://" authority
// path-abempty [ "?" query ] into its authority and the rest (path and
// query), rejecting a missing scheme, empty authority or userinfo.
func splitAbsolute(t []byte) (authority, rest []byte, ok bool) {
	i := 0
	for i < len(t) && charClass[t[i]]&cScheme != 0 {
		i++
	}
	if i == 0 || !(t[0] >= 'a' && t[0] <= 'z' || t[0] >= 'A' && t[0] <= 'Z') ||
		len(t)-i < 3 || string(t[i:i+3]) != "://" {
		return nil, nil, false
	}
	t = t[i+3:]
	j := 0
	for j < len(t) && t[j] != '/' && t[j] != '?' {
		j++
	}
	authority, rest = t[:j], t[j:]
	if !validAuthority(authority, false) {
		return nil, nil, false
	}
	return authority, rest, true
}

// validAuthority checks uri-host [ ":" port ] loosely: host characters only,
// a non-empty host, and, when needPort, a non-empty all-digit port.
func validAuthority(a []byte, needPort bool) bool {
	if len(a) == 0 {
		return false
	}
	for _, c := range a {
		if charClass[c]&cHost == 0 {
			return false
		}
	}
	colon := bytes.LastIndexByte(a, ':')
	if colon >= 0 && bytes.IndexByte(a[colon:], ']') >= 0 {
		colon = -1 // the colon is inside an IPv6 literal
	}
	if colon < 0 {
		return !needPort
	}
	if colon == 0 {
		return false
	}
	port := a[colon+1:]
	if needPort && len(port) == 0 {
		return false
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validHostField checks a Host field value: empty, or an authority.
func validHostField(v []byte) bool {
	return len(v) == 0 || validAuthority(v, false)
}

// finishHead applies the message-level rules once the head b[:end] is
// complete, then copies it into req.
func (p *Parser) finishHead(b []byte, end int, req *Request) (Event, int, error) {
	if p.clSeen && p.teSeen {
		return p.fail(errContentLengthAndTE) // RFC 9112 §6.3 ¶3: smuggling risk
	}
	if p.teSeen {
		switch {
		case p.minor == 0:
			return p.fail(errTEInHTTP10) // RFC 9112 §6.1: faulty framing
		case !p.teLastChunk || p.teChunkedN > 1:
			return p.fail(errChunkedNotFinal) // RFC 9112 §6.3 ¶4
		case p.teUnknown:
			return p.fail(errUnsupportedTransferCode) // RFC 9112 §6.1
		}
	}
	if p.clSeen && p.cl > p.lim.MaxBodyBytes {
		return p.fail(errBodyTooLarge)
	}
	keepAlive := !p.connClose && (p.minor >= 1 || p.connKeep)
	hasBody := p.teSeen || p.cl > 0

	// Semantic rules: the framing is sound, so the connection can go on
	// when no body follows.
	var sem *Error
	switch {
	case p.hostCount > 1:
		sem = errDuplicateHost // RFC 9112 §3.2
	case p.hostCount == 0 && p.minor >= 1:
		sem = errMissingHost
	case p.hostCount == 1 && !validHostField(b[p.fields[p.hostIdx].vs:p.fields[p.hostIdx].ve]):
		sem = errInvalidHost
	case p.expectBad:
		sem = errExpectationFailed // RFC 9110 §10.1.1
	}
	if sem != nil {
		if hasBody || !keepAlive {
			return p.fail(sem)
		}
		p.resetHead()
		return Event{}, end, keepOpen(sem)
	}

	req.Reset()
	a := append(req.arena, b[:end]...)
	var abs, absRest []byte
	if p.form == FormAbsolute {
		_, absRest, _ = splitAbsolute(a[p.tS:p.tE])
		if len(absRest) == 0 || absRest[0] == '?' {
			a = append(a, '/') // path-abempty is empty: the path is "/"
		}
	}
	req.arena = a
	req.Method = a[p.mS:p.mE:p.mE]
	req.Target = a[p.tS:p.tE:p.tE]
	req.Form = p.form
	req.Minor = p.minor
	switch p.form {
	case FormOrigin:
		req.Path, req.Query = splitQuery(req.Target)
	case FormAbsolute:
		abs, absRest, _ = splitAbsolute(req.Target) // re-slice the final arena
		req.Host = abs
		if len(absRest) == 0 || absRest[0] == '?' {
			req.Path = a[end : end+1 : end+1]
			if len(absRest) > 0 {
				req.Query = absRest[1:]
			}
		} else {
			req.Path, req.Query = splitQuery(absRest)
		}
	case FormAuthority:
		req.Host = req.Target
	}
	for _, f := range p.fields {
		req.Headers = append(req.Headers, Header{
			Name:  a[f.ns:f.ne:f.ne],
			Value: a[f.vs:f.ve:f.ve],
		})
	}
	if req.Host == nil && p.hostCount == 1 {
		req.Host = req.Headers[p.hostIdx].Value
	}
	req.KeepAlive = keepAlive
	req.Upgrade = p.connUpgrade
	req.ExpectContinue = p.expect && p.minor >= 1
	req.Chunked = p.teSeen
	if p.teSeen {
		req.ContentLength = -1
	} else {
		req.ContentLength = p.cl
	}

	// Enter the body state.
	p.resetHead()
	p.cur = req
	switch {
	case req.Chunked:
		p.st = stChunkSize
	case req.ContentLength > 0:
		p.st, p.remaining = stBodyLength, req.ContentLength
	default:
		p.st = stEnd
	}
	return Event{Kind: EventHead}, end, nil
}

func splitQuery(t []byte) (path, query []byte) {
	if i := bytes.IndexByte(t, '?'); i >= 0 {
		return t[:i:i], t[i+1:]
	}
	return t, nil
}

// chunk parses, without consuming anything until it can return an event:
// [CRLF ending the previous chunk's data] chunk-size line, then either the
// first bytes of that chunk's data (EventBody) or, for the last chunk, the
// trailer section (EventEnd).
func (p *Parser) chunk(b []byte) (Event, int, error) {
	off := 0
	if p.st == stChunkCRLF {
		if len(b) < 1 {
			return Event{}, 0, ErrNeedMore
		}
		if b[0] != '\r' {
			return p.fail(errInvalidChunkEnd)
		}
		if len(b) < 2 {
			return Event{}, 0, ErrNeedMore
		}
		if b[1] != '\n' {
			return p.fail(errInvalidChunkEnd)
		}
		off = 2
	}
	if p.sizeParsed && p.pos > len(b) {
		p.sizeParsed = false // contract broken: start the line over
	}
	if !p.sizeParsed {
		if p.scan < off || p.scan > len(b) {
			p.scan = off
		}
		maxLine := 16 + p.lim.MaxChunkExtBytes - p.extUsed // hex digits + extensions
		i := bytes.IndexByte(b[p.scan:], '\n')
		if i < 0 {
			p.scan = len(b)
			if len(b)-off > maxLine+1 {
				return p.fail(errChunkExtTooLong)
			}
			return Event{}, 0, ErrNeedMore
		}
		lf := p.scan + i
		if lf-1-off > maxLine {
			return p.fail(errChunkExtTooLong)
		}
		if lf == off || b[lf-1] != '\r' {
			return p.fail(errBareLF)
		}
		size, ext, e := parseChunkLine(b[off : lf-1])
		if e != nil {
			return p.fail(e)
		}
		if p.extUsed += ext; p.extUsed > p.lim.MaxChunkExtBytes {
			return p.fail(errChunkExtTooLong)
		}
		if size > p.lim.MaxBodyBytes-p.bodyTotal {
			return p.fail(errBodyTooLarge)
		}
		p.sizeParsed, p.chunkSize, p.sizeEnd = true, size, lf+1
		if size == 0 {
			p.beginSection(lf+1, p.lim.MaxTrailerBytes)
		}
	}
	if p.chunkSize == 0 {
		return p.trailers(b)
	}
	start := p.sizeEnd
	if len(b) <= start {
		return Event{}, 0, ErrNeedMore
	}
	k := len(b) - start
	if int64(k) > p.chunkSize {
		k = int(p.chunkSize)
	}
	p.bodyTotal += p.chunkSize
	p.remaining = p.chunkSize - int64(k)
	p.sizeParsed, p.scan = false, 0
	if p.remaining == 0 {
		p.st = stChunkCRLF
	} else {
		p.st = stChunkData
	}
	return Event{Kind: EventBody, Data: b[start : start+k : start+k]}, start + k, nil
}

// parseChunkLine parses chunk-size [ chunk-ext ] (RFC 9112 §7.1), returning
// the size and the number of extension bytes. Extensions are checked for
// forbidden bytes and otherwise ignored.
func parseChunkLine(line []byte) (size int64, ext int, e *Error) {
	i := 0
	for i < len(line) && charClass[line[i]]&cHex != 0 {
		i++
	}
	if i == 0 {
		return 0, 0, errInvalidChunkSize
	}
	digits := line[:i]
	for len(digits) > 1 && digits[0] == '0' {
		digits = digits[1:]
	}
	if len(digits) > 15 { // 15 hex digits = 60 bits; more may overflow int64
		return 0, 0, errChunkSizeOverflow
	}
	for _, c := range digits {
		size = size<<4 | int64(unhex(c))
	}
	rest := line[i:]
	if len(rest) == 0 {
		return size, 0, nil
	}
	// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
	j := 0
	for j < len(rest) && isOWS(rest[j]) {
		j++
	}
	if j == len(rest) || rest[j] != ';' {
		return 0, 0, errInvalidChunkSize
	}
	for _, c := range rest {
		if c == '\r' {
			return 0, 0, errBareCR
		}
		if charClass[c]&cFieldVal == 0 {
			return 0, 0, errInvalidChunkExt
		}
	}
	return size, len(rest), nil
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// trailers scans the trailer section after the last-chunk line and, once it
// is complete, stores it in the current Request and ends the message.
func (p *Parser) trailers(b []byte) (Event, int, error) {
	if p.pos > len(b) || p.scan > len(b) {
		p.sizeParsed = false
		return Event{}, 0, ErrNeedMore
	}
	for {
		i := bytes.IndexByte(b[p.scan:], '\n')
		if i < 0 {
			p.scan = len(b)
			if len(b)-p.fieldsStart > p.secLimit {
				return p.fail(errTrailerTooLarge)
			}
			return Event{}, 0, ErrNeedMore
		}
		lf := p.scan + i
		start := p.pos
		p.pos, p.scan = lf+1, lf+1
		done, e := p.fieldLine(b, start, lf, true)
		if e != nil {
			return p.fail(e)
		}
		if done {
			end := lf + 1
			if req := p.cur; req != nil && len(p.fields) > 0 {
				base := len(req.arena)
				req.arena = append(req.arena, b[p.fieldsStart:end]...)
				a := req.arena
				shift := base - p.fieldsStart
				for _, f := range p.fields {
					ns, ne, vs, ve := int(f.ns)+shift, int(f.ne)+shift, int(f.vs)+shift, int(f.ve)+shift
					req.Trailers = append(req.Trailers, Header{Name: a[ns:ne:ne], Value: a[vs:ve:ve]})
				}
			}
			p.endMessage()
			return Event{Kind: EventEnd}, end, nil
		}
	}
}

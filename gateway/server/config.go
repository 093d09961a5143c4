package server

import (
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/engine"
	"github.com/covetpy/covetpy/gateway/http1"
	"github.com/covetpy/covetpy/ops/metrics"
)

// Defaults for the Config fields left at zero.
const (
	DefaultReadHeaderTimeout    = 10 * time.Second
	DefaultIdleTimeout          = 60 * time.Second
	DefaultBodyReadTimeout      = 10 * time.Second
	DefaultMinBodyRate          = 64 << 10 // bytes per second
	DefaultWriteTimeout         = 30 * time.Second
	DefaultMaxPipelined         = 16
	DefaultMaxConcurrentStreams = 100
	DefaultMinWriteRate         = 16 << 10 // bytes per second

	DefaultMaxBufferedResponseBytes = 256 << 20
	DefaultResponseBudgetWait       = 5 * time.Second

	DefaultWSMaxMessageBytes = 1 << 20
	DefaultWSPingInterval    = 30 * time.Second
	DefaultWSIdleTimeout     = 120 * time.Second
	// MaxWSMessageBytes caps WSMaxMessageBytes: a worker's WebSocket window
	// is twice the largest message (PROTOCOL.md 2.9) and at most 2^30.
	MaxWSMessageBytes = 1 << 29
)

// maxMinRate caps MinBodyRate and MinWriteRate so that the deadline
// arithmetic (rateCredit) cannot overflow.
const maxMinRate = 1 << 30

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("server: invalid config")

// Config tunes a Server. The zero value is ready to use: every field left
// at zero takes the documented default. Negative values are invalid, but
// for WSPingInterval and WSIdleTimeout, where they turn the feature off.
// The Server reads its Config once, when Serve is first called.
type Config struct {
	// Limits bounds what a client may send (request line, header section,
	// fields, body, chunk extensions, trailers); zero fields take the
	// http1 defaults (8 KiB, 64 KiB, 100, 10 MiB, 4 KiB, 16 KiB). A body
	// of at most 64 KiB is read whole before it is dispatched; a larger or
	// chunked one streams to the worker, holding at most a 256 KiB pipe per
	// connection (HTTP/1.1) whatever Limits.MaxBodyBytes is; the limit is
	// still enforced mid-stream (413).
	Limits http1.Limits

	// Engine is the socket engine plaintext connections run on: "netpoll"
	// (Go's poller; the default), "uring" (io_uring) or "auto" (uring when
	// the start-up probe can set a ring up, else netpoll, logged once with
	// the reason). See gateway/engine.
	Engine string `config:"engine" help:"socket engine: netpoll, uring (io_uring), or auto (io_uring where it works, else netpoll, logged); empty = netpoll"`

	// ReadHeaderTimeout is how long a request head may take to arrive,
	// counted from its first byte. A head still incomplete then is
	// answered 408 and the connection closed. Default 10s.
	ReadHeaderTimeout time.Duration `config:"read_header_timeout" help:"time a request head may take from its first byte, then 408; 0 = 10s"`

	// IdleTimeout is how long a keep-alive connection may wait for the
	// first byte of its next request once every response has been
	// written. It is then closed without a response. Default 60s.
	IdleTimeout time.Duration `config:"idle_timeout" help:"keep-alive wait for the next request; 0 = 60s"`

	// BodyReadTimeout and MinBodyRate bound how slowly a request body may
	// arrive. The body of a request must keep up with the rule
	//
	//	received(t) >= MinBodyRate * (t - start - BodyReadTimeout)
	//
	// where start is the end of its head (for a request that asked for
	// 100 Continue, the moment that was sent) and received counts decoded
	// body bytes: the client has BodyReadTimeout of grace, and every
	// MinBodyRate bytes it sends buy one more second. A client falling
	// behind is answered 408 and the connection closed.
	// BodyReadTimeout defaults to 10s; MinBodyRate, in bytes per second,
	// defaults to 64 KiB/s and may not exceed 1 GiB/s.
	BodyReadTimeout time.Duration `config:"body_read_timeout" help:"grace before a request body must keep up with min_body_rate; 0 = 10s"`
	MinBodyRate     int64         `config:"min_body_rate" help:"bytes per second a request body must keep up, after its grace; 0 = 65536"`

	// WriteTimeout bounds each write to the client (one flush of buffered
	// response bytes, or one streamed piece): a client that does not read
	// for that long loses its connection. It is not a limit on the whole
	// response, so long streams are fine. Default 30s.
	WriteTimeout time.Duration `config:"write_timeout" help:"longest single write to a client; 0 = 30s"`

	// MinWriteRate bounds how slowly a client may read a response: the
	// time the writer spends blocked writing one response must keep within
	//
	//	blocked <= WriteTimeout + written / MinWriteRate
	//
	// so a client has WriteTimeout of grace, and every MinWriteRate bytes it
	// takes buy one more second. A client falling behind, as one that reads
	// a few bytes now and then to keep each write creeping forward, loses
	// its connection (covet_slow_writes_total). Only time spent waiting on
	// the client counts: a stream the backend produces slowly is not cut.
	// In bytes per second; default 16 KiB/s; at most 1 GiB/s.
	MinWriteRate int64 `config:"min_write_rate" help:"bytes per second a client must read a response at, after write_timeout of grace; 0 = 16384"`

	// MaxBufferedResponseBytes bounds the response body bytes the gateway
	// holds for all its clients together (dispatch.HeldResponseBytes: what
	// the workers sent and the clients have not taken yet; each response
	// holds at most dispatch.MaxResponseHeld, 2 MiB 128 KiB, its window).
	// While they are over it, the server closes the connections whose
	// writes have been blocked longest (at least 100ms), as many as it takes
	// (covet_slow_readers_shed_total), and new requests wait for the bytes
	// to fall back within it, up to ResponseBudgetWait, then are answered
	// 503 with Retry-After (covet_response_budget_shed_total). The bytes
	// held are read every 100ms, every 10ms once past a quarter of the
	// budget, so it can be overrun by what the ring readers copy in that
	// time; with very many connections a pass that looks for the slowest
	// runs at most a tenth of the time (one every 650ms at 500,000).
	// Default 256 MiB; at least dispatch.MaxResponseHeld.
	MaxBufferedResponseBytes int64 `config:"max_buffered_response_bytes" help:"response body bytes held for all clients together; over it the slowest readers are cut and new requests wait; 0 = 268435456 (256 MiB)"`
	// ResponseBudgetWait is how long a request waits for the response bytes
	// held to fall within MaxBufferedResponseBytes before it is answered
	// 503. Default 5s.
	ResponseBudgetWait time.Duration `config:"response_budget_wait" help:"longest wait for held response bytes to fall within max_buffered_response_bytes, then 503 with Retry-After; 0 = 5s"`

	// MaxConnections is the most client connections open at once. A
	// connection accepted at the limit makes the server close the
	// longest-idle keep-alive connection (one waiting for its next request
	// with nothing to answer) in its place, or, when every connection is
	// busy, is closed at once (covet_connections_shed_total). So that this
	// costs no more with many connections than with a few thousand, the
	// longest idle is chosen among the first 64 idle connections met in
	// random order, and a new connection is refused when the first 4096
	// looked at are all busy. Default 7/8
	// of the open-file limit (the soft RLIMIT_NOFILE when the Config is
	// defaulted, which Go's runtime raised to the hard limit when the
	// process started), leaving the rest for worker sockets, segments and
	// eventfds, the listeners and log files; 1024 when the limit is unknown
	// or unlimited.
	MaxConnections int `config:"max_connections" help:"most client connections open at once; at the limit the longest-idle keep-alive one is closed for a new one; 0 = 7/8 of the open-file limit"`

	// MaxConnsPerIP is the most connections one client IP address may have
	// open at once (HTTP/1.1, TLS and h2c alike; HTTP/3 is not counted). A
	// connection beyond it is closed as soon as it is accepted, unanswered
	// (a response would cost what the limit saves), and counted in
	// covet_client_refusals_total{reason="conns_per_ip"}. The address is
	// the PROXY header's source when ProxyProtocol is on (the balancer's
	// own for a LOCAL header), else the socket's peer; IPv4-mapped IPv6
	// addresses count as IPv4, other IPv6 addresses one by one. Default 0:
	// no limit.
	MaxConnsPerIP int `config:"max_conns_per_ip" help:"most connections one client IP may have open (the PROXY header's source with proxy_protocol); more are closed at once, unanswered; 0 = no limit"`

	// ProxyProtocol requires every connection Serve accepts to begin with
	// a PROXY protocol header, version 1 or 2 (gateway/proxyproto), sent by
	// the load balancer in front; it must arrive within ReadHeaderTimeout,
	// before the TLS handshake or the first HTTP byte. Its source address
	// becomes the connection's client (REQ_HEAD's client, the access log,
	// MaxConnsPerIP); a LOCAL header (a balancer's health check), or one
	// naming no IP source (UNKNOWN, UNSPEC, UNIX), keeps the socket's peer.
	// A connection without a valid header is closed unanswered and counted
	// in covet_proxy_protocol_refusals_total. Anyone who can reach the port
	// can claim any address this way: only the balancer may. Off by
	// default. HTTP/3 (UDP) is not affected.
	ProxyProtocol bool `config:"proxy_protocol" help:"every connection must begin with a PROXY protocol v1/v2 header (from the load balancer) giving the client's address; others are closed"`

	// MaxPipelined is how many requests (and 100-continue answers) a
	// connection parses ahead of the one being answered. When the queue is
	// full the connection stops reading until a response is done.
	// Default 16.
	MaxPipelined int `config:"max_pipelined" help:"requests parsed ahead of the one being answered, per connection; 0 = 16"`

	// HTTP2 serves HTTP/2 to TLS clients that offer it in ALPN (h2); off,
	// every TLS client gets HTTP/1.1. The zero Config leaves it off;
	// covet-gateway turns it on by default. H2C serves HTTP/2 with prior
	// knowledge (RFC 9113 3.3) on cleartext connections: a connection whose
	// first bytes are the HTTP/2 preface is served as HTTP/2, any other as
	// HTTP/1.1. Off by default: it costs every cleartext connection a
	// goroutine until its first bytes arrive.
	HTTP2 bool `config:"http2" help:"serve HTTP/2 to TLS clients that offer it (ALPN h2)"`
	H2C   bool `config:"h2c" help:"serve HTTP/2 with prior knowledge on cleartext connections (h2c)"`
	// MaxConcurrentStreams is the most streams (requests) one HTTP/2 or
	// HTTP/3 connection may have open at once. Default 100.
	MaxConcurrentStreams int `config:"max_concurrent_streams" help:"most requests one HTTP/2 or HTTP/3 connection may have in flight at once; 0 = 100"`
	// AltSvc, when set, is sent as Alt-Svc on every HTTP/1.1 and HTTP/2
	// response (covet-gateway sets it when it serves HTTP/3).
	AltSvc string `config:"-"`
	// HTTP3EarlyData accepts TLS early data (0-RTT) on HTTP/3: a resuming
	// client saves a round trip, but its early requests can be replayed, so
	// those with a method other than GET, HEAD or OPTIONS are answered 425
	// Too Early. Off by default.
	HTTP3EarlyData bool `config:"http3_early_data" help:"accept 0-RTT early data on HTTP/3 (unsafe methods in it are answered 425 Too Early)"`

	// WSMaxMessageBytes is the largest WebSocket message a client may send,
	// counted whole (all its fragments) and after decompression; a larger
	// one closes the session with 1009. It also bounds the memory a
	// session's reading holds. Default 1 MiB; at most 512 MiB.
	WSMaxMessageBytes int64 `config:"ws_max_message_bytes" help:"largest WebSocket message a client may send (whole, decompressed), else close 1009; 0 = 1048576 (1 MiB)"`
	// WSPingInterval is how often the gateway pings each WebSocket client
	// (skipped while a message is being written). Default 30s; negative:
	// no pings.
	WSPingInterval time.Duration `config:"ws_ping_interval" help:"period of the gateway's WebSocket pings; 0 = 30s, negative = none"`
	// WSIdleTimeout closes a WebSocket session (1001) when no frame, pongs
	// included, has come from the client for this long; with pings on, a
	// live client always answers within it. Default 120s; negative: none.
	WSIdleTimeout time.Duration `config:"ws_idle_timeout" help:"close a WebSocket session (1001) after this long without a frame from the client; 0 = 120s, negative = never"`
	// WSCompression negotiates permessage-deflate (RFC 7692) with clients
	// that offer it. The zero Config leaves it off; covet-gateway turns it
	// on by default.
	WSCompression bool `config:"ws_compression" help:"negotiate permessage-deflate (RFC 7692) on WebSocket sessions"`
	// Static mounts directories that the gateway serves from disk itself,
	// before any route: each entry is "PREFIX=DIR" (e.g.
	// "/assets=./public"), and a GET or HEAD of PREFIX/NAME is answered
	// with the file DIR/NAME (static.go, docs/operations.md). PREFIX starts
	// with "/", is not "/" and has no trailing slash, no dot segment, no
	// "%", "{" or "}"; DIR must be a directory. StaticIndex answers a
	// directory with its index.html. Empty: none.
	Static      []string `config:"static" help:"directories the gateway serves from disk, each PREFIX=DIR (e.g. /assets=./public); empty = none"`
	StaticIndex bool     `config:"static_index" help:"answer a request for a directory of a static mount with its index.html"`

	// Logger receives connection and dispatch errors, mostly at Debug
	// level. nil discards them.
	Logger *slog.Logger

	// Metrics, when set, records every response (count by app, route
	// pattern, method and status; latency from the head being parsed to the
	// response being written), connections accepted and open, and bytes
	// read and written. Requests no route served are labelled app "" and
	// route metrics.Unmatched; a request whose client left before any
	// response byte was written counts as status 499. nil records nothing.
	Metrics *metrics.Metrics

	// AccessLog, when set, gets one Info record ("request") per response:
	// method, path, status, bytes (written to the client, head included),
	// duration, request_id, app, route and client. nil logs nothing.
	AccessLog *slog.Logger
}

// Validate reports the first invalid field, naming it. A nil result means
// the Config can be served (after defaults are applied).
func (c *Config) Validate() error {
	if !engine.Valid(c.Engine) {
		return fmt.Errorf("%w: engine: %q is not auto, uring or netpoll", ErrInvalidConfig, c.Engine)
	}
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("%w: Limits: %v", ErrInvalidConfig, err)
	}
	durations := [...]struct {
		name string
		v    time.Duration
	}{
		{"ReadHeaderTimeout", c.ReadHeaderTimeout},
		{"IdleTimeout", c.IdleTimeout},
		{"BodyReadTimeout", c.BodyReadTimeout},
		{"WriteTimeout", c.WriteTimeout},
	}
	for _, d := range durations {
		if d.v < 0 {
			return fmt.Errorf("%w: %s is negative (%v)", ErrInvalidConfig, d.name, d.v)
		}
	}
	if c.MinBodyRate < 0 || c.MinBodyRate > maxMinRate {
		return fmt.Errorf("%w: MinBodyRate %d is outside 0..%d bytes/s", ErrInvalidConfig, c.MinBodyRate, maxMinRate)
	}
	if c.MinWriteRate < 0 || c.MinWriteRate > maxMinRate {
		return fmt.Errorf("%w: MinWriteRate %d is outside 0..%d bytes/s", ErrInvalidConfig, c.MinWriteRate, maxMinRate)
	}
	if c.MaxBufferedResponseBytes < 0 || (c.MaxBufferedResponseBytes > 0 && c.MaxBufferedResponseBytes < dispatch.MaxResponseHeld) {
		return fmt.Errorf("%w: MaxBufferedResponseBytes %d is below one response's %d bytes", ErrInvalidConfig, c.MaxBufferedResponseBytes, dispatch.MaxResponseHeld)
	}
	if c.ResponseBudgetWait < 0 {
		return fmt.Errorf("%w: ResponseBudgetWait is negative (%v)", ErrInvalidConfig, c.ResponseBudgetWait)
	}
	if c.MaxConnections < 0 {
		return fmt.Errorf("%w: MaxConnections %d is negative", ErrInvalidConfig, c.MaxConnections)
	}
	if c.MaxConnsPerIP < 0 {
		return fmt.Errorf("%w: MaxConnsPerIP %d is negative", ErrInvalidConfig, c.MaxConnsPerIP)
	}
	if c.MaxConcurrentStreams < 0 || c.MaxConcurrentStreams > 1<<20 {
		return fmt.Errorf("%w: MaxConcurrentStreams %d is outside 0..1048576", ErrInvalidConfig, c.MaxConcurrentStreams)
	}
	if c.MaxPipelined < 0 || c.MaxPipelined > 1<<16 {
		return fmt.Errorf("%w: MaxPipelined %d is outside 0..65536", ErrInvalidConfig, c.MaxPipelined)
	}
	if c.WSMaxMessageBytes < 0 || c.WSMaxMessageBytes > MaxWSMessageBytes {
		return fmt.Errorf("%w: WSMaxMessageBytes %d is outside 0..%d", ErrInvalidConfig, c.WSMaxMessageBytes, MaxWSMessageBytes)
	}
	if _, err := parseMounts(c.Static); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return nil
}

// WithDefaults returns c with every zero field replaced by its default.
func (c Config) WithDefaults() Config {
	c.Limits = c.Limits.WithDefaults()
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.BodyReadTimeout == 0 {
		c.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if c.MinBodyRate == 0 {
		c.MinBodyRate = DefaultMinBodyRate
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxPipelined == 0 {
		c.MaxPipelined = DefaultMaxPipelined
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if c.MinWriteRate == 0 {
		c.MinWriteRate = DefaultMinWriteRate
	}
	if c.MaxBufferedResponseBytes == 0 {
		c.MaxBufferedResponseBytes = DefaultMaxBufferedResponseBytes
	}
	if c.ResponseBudgetWait == 0 {
		c.ResponseBudgetWait = DefaultResponseBudgetWait
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = defaultMaxConnections()
	}
	if c.WSMaxMessageBytes == 0 {
		c.WSMaxMessageBytes = DefaultWSMaxMessageBytes
	}
	if c.WSPingInterval == 0 {
		c.WSPingInterval = DefaultWSPingInterval
	}
	if c.WSIdleTimeout == 0 {
		c.WSIdleTimeout = DefaultWSIdleTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// bodyDeadline is the read deadline for a body that began at start and of
// which received bytes have arrived (see Config.BodyReadTimeout).
func (c *Config) bodyDeadline(start time.Time, received int64) time.Time {
	credit, ok := rateCredit(received, c.MinBodyRate)
	if !ok {
		return time.Time{}
	}
	return start.Add(c.BodyReadTimeout + credit)
}

// rateCredit is the time n bytes buy at rate bytes per second (rate at
// most maxMinRate), to the nanosecond; ok is false when that is over about
// 34 years, no deadline worth computing.
func rateCredit(n, rate int64) (credit time.Duration, ok bool) {
	if n/rate > 1<<30 {
		return 0, false
	}
	return time.Duration(n/rate)*time.Second + time.Duration(n%rate)*time.Second/time.Duration(rate), true
}

// defaultMaxConnections is 7/8 of the soft open-file limit (see
// Config.MaxConnections).
func defaultMaxConnections() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 || rl.Cur > 1<<30 {
		return 1024
	}
	return max(1, int(rl.Cur-rl.Cur/8))
}

// writeDeadline is the write deadline for a write that starts at now with
// blocked time already spent writing the current response and written
// bytes of it out (see Config.MinWriteRate); by is the bound of the write
// itself (WriteTimeout after its start). rate reports whether the rate rule
// set the result.
func (c *Config) writeDeadline(now, by time.Time, blocked time.Duration, written int64) (dl time.Time, rate bool) {
	credit, ok := rateCredit(written, c.MinWriteRate)
	if !ok { // decades of credit: only the write's own bound
		return by, false
	}
	if rl := now.Add(c.WriteTimeout + credit - blocked); rl.Before(by) {
		return rl, true
	}
	return by, false
}

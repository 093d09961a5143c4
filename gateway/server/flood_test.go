package server

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The HTTP/2 floods (Rapid Reset, CONTINUATION, PING and SETTINGS floods, streams
// over the limit) and the header-list limit, driven over h2c by a client that
// writes frames by hand with x/net/http2's Framer. Each test bounds what the
// flood costs the server: backend calls, goroutines, heap growth after GC; it
// checks how the connection ends and that a normal client is still served. The
// CPU each flood frame costs (the process's, client included) is logged, not
// asserted; docs/conformance.md gives the figures.

// h2peer is a raw HTTP/2 client connection. Frames are written with fr under
// wmu; the server's frames are read on a goroutine of their own, which ACKs
// the server's SETTINGS and tallies what came.
type h2peer struct {
	t   testing.TB
	nc  net.Conn
	bw  *bufio.Writer // under fr: a flood is written in few system calls
	fr  *http2.Framer
	wmu sync.Mutex
	hb  bytes.Buffer
	enc *hpack.Encoder

	readGate sync.Mutex // held: the peer stops reading (its TCP window fills)

	mu       sync.Mutex
	settings map[http2.SettingID]uint32 // the server's first SETTINGS
	goaway   *http2.ErrCode
	rst      map[uint32]http2.ErrCode // stream -> code
	status   map[uint32]string        // stream -> :status of its response
	ended    map[uint32]bool          // stream -> END_STREAM seen
	pingAcks int
	lastPing [8]byte // the data of the last PING ACK
	setAcks  int
	frames   int
	done     chan struct{} // closed when the read side ends
	readErr  error
}

// dialH2C connects to ts with HTTP/2 prior knowledge and sends the preface
// and an empty SETTINGS frame; it waits for the server's SETTINGS.
func dialH2C(t testing.TB, ts *testServer) *h2peer {
	t.Helper()
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(60 * time.Second)) // no test hangs on a stuck peer
	bw := bufio.NewWriterSize(nc, 64<<10)
	p := &h2peer{t: t, nc: nc, bw: bw, fr: http2.NewFramer(bw, nc), settings: map[http2.SettingID]uint32{},
		rst: map[uint32]http2.ErrCode{}, status: map[uint32]string{}, ended: map[uint32]bool{}, done: make(chan struct{})}
	p.enc = hpack.NewEncoder(&p.hb)
	p.fr.SetMaxReadFrameSize(1 << 20)
	p.write(func() error {
		io.WriteString(bw, http2.ClientPreface)
		return p.fr.WriteSettings()
	})
	go p.readLoop()
	waitFor(t, "the server's SETTINGS", func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.settings) > 0 })
	return p
}

// write writes frames with f and flushes them.
func (p *h2peer) write(f func() error) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if err := f(); err != nil {
		return err
	}
	return p.bw.Flush()
}

func (p *h2peer) readLoop() {
	defer close(p.done)
	dec := hpack.NewDecoder(4096, nil)
	for {
		p.readGate.Lock()
		//lint:ignore SA2001 a gate, not a critical section: held, the peer stops reading
		p.readGate.Unlock()
		f, err := p.fr.ReadFrame()
		if err != nil {
			p.mu.Lock()
			p.readErr = err
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		p.frames++
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				p.setAcks++
			} else if len(p.settings) == 0 {
				f.ForeachSetting(func(s http2.Setting) error { p.settings[s.ID] = s.Val; return nil })
				p.settings[0] = 1 // seen, even if empty
				go p.write(func() error { return p.fr.WriteSettingsAck() })
			}
		case *http2.PingFrame:
			if f.IsAck() {
				p.pingAcks++
				p.lastPing = f.Data
			}
		case *http2.GoAwayFrame:
			code := f.ErrCode
			p.goaway = &code
		case *http2.RSTStreamFrame:
			p.rst[f.StreamID] = f.ErrCode
		case *http2.HeadersFrame:
			fields, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err == nil {
				for _, hf := range fields {
					if hf.Name == ":status" {
						p.status[f.StreamID] = hf.Value
					}
				}
			}
			if f.StreamEnded() {
				p.ended[f.StreamID] = true
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				p.ended[f.StreamID] = true
			}
			if n := len(f.Data()); n > 0 {
				// Keep the server's windows open.
				id := f.StreamID
				go p.write(func() error {
					p.fr.WriteWindowUpdate(0, uint32(n))
					return p.fr.WriteWindowUpdate(id, uint32(n))
				})
			}
		}
		p.mu.Unlock()
	}
}

// block is an HPACK block for a request for method path with the extra
// fields given, never indexed (each block stands alone).
func (p *h2peer) block(method, path string, extra ...string) []byte {
	p.hb.Reset()
	fields := []string{":method", method, ":scheme", "http", ":authority", "flood.test", ":path", path}
	fields = append(fields, extra...)
	for i := 0; i+1 < len(fields); i += 2 {
		p.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1], Sensitive: true})
	}
	return bytes.Clone(p.hb.Bytes())
}

// request sends a whole request without a body on stream id.
func (p *h2peer) request(id uint32, method, path string, extra ...string) error {
	return p.write(func() error {
		return p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(method, path, extra...), EndStream: true, EndHeaders: true})
	})
}

// waitClosed waits for the server to end the connection and returns the
// GOAWAY's code, nil when none came.
func (p *h2peer) waitClosed() *http2.ErrCode {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Fatal("the server did not close the connection within 10s")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.goaway
}

// floodCost measures the process while a flood runs: the peak goroutine count
// (sampled), heap growth after GC, and CPU time (user+system, the client's
// framing included).
type floodCost struct {
	g0, peak int
	heap0    uint64
	cpu0     time.Duration
	stop     chan struct{}
	sampler  sync.WaitGroup
	peakMu   sync.Mutex
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func startCost() *floodCost {
	c := &floodCost{g0: runtime.NumGoroutine(), heap0: heapAfterGC(), stop: make(chan struct{})}
	c.peak = c.g0
	c.cpu0 = cpuTime()
	c.sampler.Add(1)
	go func() {
		defer c.sampler.Done()
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-tk.C:
				n := runtime.NumGoroutine()
				c.peakMu.Lock()
				c.peak = max(c.peak, n)
				c.peakMu.Unlock()
			}
		}
	}()
	return c
}

// end stops the sampler and returns the CPU time since start, the goroutines
// above the start count at the peak, and the heap growth (negative: shrank).
func (c *floodCost) end() (cpu time.Duration, goroutines int, heap int64) {
	cpu = cpuTime() - c.cpu0
	close(c.stop)
	c.sampler.Wait()
	return cpu, c.peak - c.g0, int64(heapAfterGC()) - int64(c.heap0)
}

// servedAfter checks that a fresh HTTP/2 client is served normally.
func servedAfter(t *testing.T, ts *testServer) {
	t.Helper()
	resp, err := client(t, nil, "h2c").Get(ts.url("/ok"))
	if err != nil {
		t.Fatalf("a normal client after the flood: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(body) != "ok" {
		t.Fatalf("a normal client after the flood: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
}

// floodBackend serves GET /ok, and GET /slow, which counts its calls and
// holds each until its request is canceled or release is closed.
func floodBackend(t testing.TB) (b *fakeBackend, calls *atomic.Int64, release chan struct{}) {
	b = newFakeBackend()
	calls = new(atomic.Int64)
	release = make(chan struct{})
	b.handle(t, "GET", "/ok", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		return respond(w, 200, "ok")
	})
	b.handle(t, "GET", "/slow", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
		calls.Add(1)
		select {
		case <-ctx.Done():
			return dispatch.ErrCanceled
		case <-release:
			return respond(w, 200, "slow")
		}
	})
	return b, calls, release
}

// Rapid Reset (CVE-2023-44487): HEADERS then RST_STREAM at once, thousands of
// times. Few of them may reach the backend, the goroutines stay bounded by the
// stream limit, and the server either keeps up or hangs up ENHANCE_YOUR_CALM.
func TestHTTP2RapidReset(t *testing.T) {
	const n = 20000
	b, calls, _ := floodBackend(t)
	ts := startServer(t, Config{H2C: true, MaxConcurrentStreams: 100}, b)
	p := dialH2C(t, ts)
	cost := startCost()
	sent := p.floodFrames(n, func(i int) error {
		id := uint32(2*i + 1)
		if err := p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block("GET", "/slow"), EndStream: true, EndHeaders: true}); err != nil {
			return err
		}
		return p.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	})
	// A last request on the same connection, if it is still open, shows
	// when the server has read the flood.
	last := uint32(2*n + 1)
	if p.request(last, "GET", "/ok") == nil {
		waitFor(t, "the last response or the end of the connection", func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.ended[last] || p.readErr != nil
		})
	}
	cpu, goroutines, heap := cost.end()
	p.mu.Lock()
	code, ended, closed := p.goaway, p.ended[last], p.readErr != nil
	p.mu.Unlock()
	t.Logf("rapid reset: %d of %d HEADERS+RST_STREAM sent, backend called %d times, GOAWAY %v, connection closed %v, last request answered %v; goroutines +%d at the peak, heap %+d bytes after GC; CPU %v, %v per pair",
		sent, n, calls.Load(), code, closed, ended, goroutines, heap, cpu, cpu/time.Duration(max(sent, 1)))
	// At most h2MinResets reset requests, and the MaxConcurrentStreams
	// running when the connection is closed, reach the backend.
	if c := calls.Load(); c > h2MinResets+100+100 {
		t.Errorf("the backend was called %d times for %d reset streams, want at most %d", c, sent, h2MinResets+200)
	}
	// net/http sends GOAWAY ENHANCE_YOUR_CALM when more than 4 x
	// MaxConcurrentStreams handlers wait to start; h2Conn closes the
	// connection after h2MinResets resets. Either ends it.
	if !closed {
		t.Errorf("the connection survived %d reset streams", sent)
	}
	if code != nil && *code != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("GOAWAY %v, want none or ENHANCE_YOUR_CALM", *code)
	}
	if goroutines > 300 {
		t.Errorf("%d more goroutines at the peak, want at most 300 (100 streams)", goroutines)
	}
	if heap > 16<<20 {
		t.Errorf("heap grew %d bytes, want under 16 MiB", heap)
	}
	servedAfter(t, ts)
}

// floodFrames writes frames with next until n are written or a write fails
// (the server hung up and the socket buffers are full, or it reset the
// connection); it returns how many were written.
func (p *h2peer) floodFrames(n int, next func(i int) error) int {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	defer p.bw.Flush()
	for i := range n {
		if next(i) != nil {
			return i
		}
		select {
		case <-p.done:
			return i + 1
		default:
		}
	}
	return n
}

// CONTINUATION flood (CVE-2023-45288): a header block that never ends, in
// CONTINUATION frames full of fields, or empty ones. The server must not
// buffer or decode it forever, and never call the backend: a block past the
// header list limit is a connection error (GOAWAY PROTOCOL_ERROR); empty
// frames, which net/http reads on (each costs what a PING does), hold the
// connection only until the idle timeout (GOAWAY NO_ERROR), as no stream is
// open.
func TestHTTP2ContinuationFlood(t *testing.T) {
	for _, size := range []int{1024, 0} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			const n = 200000
			b, calls, _ := floodBackend(t)
			cfg := Config{H2C: true, IdleTimeout: 2 * time.Second}
			cfg.Limits.MaxHeaderBytes = 16 << 10
			ts := startServer(t, cfg, b)
			p := dialH2C(t, ts)
			var frag []byte
			if size > 0 {
				p.hb.Reset()
				p.enc.WriteField(hpack.HeaderField{Name: "x-flood", Value: strings.Repeat("a", size-16), Sensitive: true})
				frag = bytes.Clone(p.hb.Bytes())
			}
			cost := startCost()
			sent := p.floodFrames(n, func(i int) error {
				if i == 0 {
					return p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: p.block("GET", "/slow"), EndStream: true})
				}
				return p.fr.WriteContinuation(1, false, frag)
			})
			code := p.waitClosed()
			cpu, goroutines, heap := cost.end()
			t.Logf("CONTINUATION flood (%d-byte frames): %d of %d frames written before the server hung up, GOAWAY %v; goroutines +%d at the peak, heap %+d bytes after GC; CPU %v, %v per frame",
				size, sent, n, code, goroutines, heap, cpu, cpu/time.Duration(max(sent, 1)))
			want := http2.ErrCodeProtocol
			if size == 0 {
				want = http2.ErrCodeNo
			}
			if code == nil || *code != want {
				t.Errorf("GOAWAY %v, want %v", code, want)
			}
			if c := calls.Load(); c != 0 {
				t.Errorf("the backend was called %d times", c)
			}
			if goroutines > 50 {
				t.Errorf("%d more goroutines at the peak, want at most 50", goroutines)
			}
			if heap > 16<<20 {
				t.Errorf("heap grew %d bytes, want under 16 MiB", heap)
			}
			servedAfter(t, ts)
		})
	}
}

// PING and SETTINGS floods: each frame asks the server for an ACK. A client
// that reads them, sending a thousand at a time, gets them, at a CPU cost per
// frame logged here, and keeps its connection. One that stops reading makes
// PING ACKs queue up, and net/http closes the connection once 10,000 control
// frames wait (as it does for a client that sends them all at once faster
// than it reads); SETTINGS ACKs do not queue (net/http owes one at a time,
// however many SETTINGS came meanwhile), so that connection stays open.
// Memory stays bounded either way, the backend is not called, and a normal
// client is served after.
func TestHTTP2ControlFrameFloods(t *testing.T) {
	floods := []struct {
		name         string
		frame        func(p *h2peer, i int) error
		unreadCloses bool
		unreadN      int // frames sent unread
	}{
		// Enough PINGs to fill the socket buffers (a few MiB) many times
		// over; the server hangs up long before.
		{"PING", func(p *h2peer, i int) error {
			return p.fr.WritePing(false, [8]byte{byte(i), byte(i >> 8), byte(i >> 16)})
		}, true, 3000000},
		{"SETTINGS", func(p *h2peer, i int) error {
			return p.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(65535 + i%2)})
		}, false, 200000},
	}
	for _, fl := range floods {
		for _, read := range []bool{true, false} {
			name, n := fl.name+"/answered", 100000
			if !read {
				name, n = fl.name+"/unread", fl.unreadN
			}
			t.Run(name, func(t *testing.T) {
				b, calls, _ := floodBackend(t)
				ts := startServer(t, Config{H2C: true}, b)
				p := dialH2C(t, ts)
				if !read {
					p.readGate.Lock()
				}
				cost := startCost()
				sent := 0
				if read {
					const batch = 1000
					for sent < n {
						k := p.floodFrames(batch, func(i int) error { return fl.frame(p, sent+i) })
						sent += k
						mark := [8]byte{0xff, 0xfe, byte(sent), byte(sent >> 8), byte(sent >> 16)}
						if k < batch || p.write(func() error { return p.fr.WritePing(false, mark) }) != nil {
							break
						}
						waitFor20s(t, "the batch's PING ACK", func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.lastPing == mark || p.readErr != nil })
					}
				} else {
					sent = p.floodFrames(n, func(i int) error { return fl.frame(p, i) })
				}
				if !read {
					p.readGate.Unlock()
				}
				// A request after the flood: answered once the server
				// has read it all, unless it hung up.
				p.request(1, "GET", "/ok")
				waitFor20s(t, "the request after the flood, or the end of the connection", func() bool {
					p.mu.Lock()
					defer p.mu.Unlock()
					return p.ended[1] || p.readErr != nil
				})
				cpu, goroutines, heap := cost.end()
				p.mu.Lock()
				acks, answered, closed := p.pingAcks, p.ended[1], p.readErr != nil // PING: the batches' marks included
				if fl.name == "SETTINGS" {
					acks = p.setAcks - 1 // less the ACK of the first SETTINGS
				}
				p.mu.Unlock()
				t.Logf("%s flood, client reading %v: %d of %d frames written, %d ACKs, request after answered %v, connection closed %v; goroutines +%d at the peak, heap %+d bytes after GC; CPU %v, %v per frame",
					fl.name, read, sent, n, acks, answered, closed, goroutines, heap, cpu, cpu/time.Duration(max(sent, 1)))
				if wantClosed := !read && fl.unreadCloses; closed != wantClosed || answered == wantClosed {
					t.Errorf("connection closed %v, request after answered %v; want closed %v", closed, answered, wantClosed)
				}
				if fl.name == "PING" && read && acks != sent+n/1000 {
					t.Errorf("%d PINGs answered, want %d", acks, sent+n/1000)
				}
				if c := calls.Load(); c != 0 {
					t.Errorf("the backend was called %d times", c)
				}
				if goroutines > 50 {
					t.Errorf("%d more goroutines at the peak, want at most 50", goroutines)
				}
				if heap > 16<<20 {
					t.Errorf("heap grew %d bytes, want under 16 MiB", heap)
				}
				servedAfter(t, ts)
			})
		}
	}
}

// waitFor20s is waitFor with a longer wait, for a server reading a flood.
func waitFor20s(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Streams over SETTINGS_MAX_CONCURRENT_STREAMS are refused one by one
// (RST_STREAM: PROTOCOL_ERROR once the client has ACKed the setting, else
// REFUSED_STREAM), never reach the backend, and leave the connection and its
// open streams alone, even a thousand of them.
func TestHTTP2StreamsOverTheLimit(t *testing.T) {
	const limit, over = 10, 1000
	b, calls, release := floodBackend(t)
	ts := startServer(t, Config{H2C: true, MaxConcurrentStreams: limit}, b)
	p := dialH2C(t, ts)
	p.mu.Lock()
	adv := p.settings[http2.SettingMaxConcurrentStreams]
	p.mu.Unlock()
	if adv != limit {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want %d", adv, limit)
	}
	for i := range limit {
		if err := p.request(uint32(2*i+1), "GET", "/slow"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the streams within the limit to reach the backend", func() bool { return calls.Load() == limit })
	cost := startCost()
	sent := p.floodFrames(over, func(i int) error {
		return p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*(limit+i) + 1), BlockFragment: p.block("GET", "/slow"), EndStream: true, EndHeaders: true})
	})
	waitFor(t, "every stream over the limit refused", func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.rst) == sent || p.readErr != nil })
	cpu, goroutines, heap := cost.end()
	p.mu.Lock()
	codes := map[http2.ErrCode]int{}
	for _, c := range p.rst {
		codes[c]++
	}
	closed := p.readErr != nil
	p.mu.Unlock()
	t.Logf("%d streams over a limit of %d: RST_STREAM codes %v, connection closed %v; goroutines +%d, heap %+d bytes after GC; CPU %v", sent, limit, codes, closed, goroutines, heap, cpu)
	if closed || sent != over || codes[http2.ErrCodeProtocol]+codes[http2.ErrCodeRefusedStream] != over {
		t.Errorf("want %d streams refused (PROTOCOL_ERROR or REFUSED_STREAM) and the connection open", over)
	}
	if c := calls.Load(); c != limit {
		t.Errorf("the backend was called %d times, want %d", c, limit)
	}
	if goroutines > 50 || heap > 16<<20 {
		t.Errorf("goroutines +%d (want at most 50), heap %+d bytes (want under 16 MiB)", goroutines, heap)
	}
	// The streams within the limit are answered; then the connection
	// takes new ones.
	close(release)
	waitFor(t, "the streams within the limit answered", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for i := range limit {
			if !p.ended[uint32(2*i+1)] || p.status[uint32(2*i+1)] != "200" {
				return false
			}
		}
		return true
	})
	next := uint32(2*(limit+over) + 1)
	if err := p.request(next, "GET", "/ok"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new stream answered", func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.status[next] == "200" && p.ended[next] })
	servedAfter(t, ts)
}

// SETTINGS_MAX_HEADER_LIST_SIZE is Limits.MaxHeaderBytes (and net/http's
// allowance for field overhead); a request whose fields are larger is answered
// 431 without reaching the backend, and the connection serves on.
func TestHTTP2HeaderListLimit(t *testing.T) {
	const max = 4 << 10
	b, calls, _ := floodBackend(t)
	cfg := Config{H2C: true}
	cfg.Limits.MaxHeaderBytes = max
	ts := startServer(t, cfg, b)
	p := dialH2C(t, ts)
	p.mu.Lock()
	adv := p.settings[http2.SettingMaxHeaderListSize]
	p.mu.Unlock()
	if adv < max || adv > 2*max {
		t.Fatalf("SETTINGS_MAX_HEADER_LIST_SIZE %d, want Limits.MaxHeaderBytes %d or a little more", adv, max)
	}
	// Fields of 1 KiB, in CONTINUATION frames where they exceed a frame.
	var big []string
	for i := range int(adv)/1024 + 2 {
		big = append(big, "x-big-"+strconv.Itoa(i), strings.Repeat("b", 1024))
	}
	blk := p.block("GET", "/slow", big...)
	p.write(func() error {
		first := min(len(blk), 16<<10)
		if err := p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk[:first], EndStream: true, EndHeaders: first == len(blk)}); err != nil {
			return err
		}
		for rest := blk[first:]; len(rest) > 0; {
			k := min(len(rest), 16<<10)
			if err := p.fr.WriteContinuation(1, k == len(rest), rest[:k]); err != nil {
				return err
			}
			rest = rest[k:]
		}
		return nil
	})
	waitFor(t, "the answer to the oversized request", func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.ended[1] || p.rst[1] != 0 || p.readErr != nil })
	p.mu.Lock()
	status, rst, closed := p.status[1], p.rst[1], p.readErr != nil
	p.mu.Unlock()
	if status != "431" || closed {
		t.Errorf("oversized request: status %q, RST_STREAM %v, connection closed %v; want 431 and the connection open", status, rst, closed)
	}
	if c := calls.Load(); c != 0 {
		t.Errorf("the backend was called %d times", c)
	}
	// Just within the limit, and on the same connection: served.
	if err := p.request(3, "GET", "/ok", "x-fits", strings.Repeat("f", max/2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the request within the limit answered", func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.ended[3] })
	if p.status[3] != "200" {
		t.Errorf("request within the limit: status %q, want 200", p.status[3])
	}
}

// SETTINGS_MAX_FRAME_SIZE is 16384 (h2.go): a bigger HEADERS frame is a
// connection error (GOAWAY FRAME_SIZE_ERROR) that never reaches the backend.
func TestHTTP2FrameSizeLimit(t *testing.T) {
	b, calls, _ := floodBackend(t)
	ts := startServer(t, Config{H2C: true}, b)
	p := dialH2C(t, ts)
	p.mu.Lock()
	adv, ok := p.settings[http2.SettingMaxFrameSize]
	p.mu.Unlock()
	if ok && adv != 16384 {
		t.Fatalf("SETTINGS_MAX_FRAME_SIZE %d, want 16384", adv)
	}
	blk := p.block("GET", "/slow", "x-big", strings.Repeat("b", 30000))
	if len(blk) <= 16384 {
		t.Fatalf("the header block is %d bytes, want more than 16384", len(blk))
	}
	p.write(func() error {
		return p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndStream: true, EndHeaders: true})
	})
	if code := p.waitClosed(); code == nil || *code != http2.ErrCodeFrameSize {
		t.Errorf("GOAWAY %v, want FRAME_SIZE_ERROR", code)
	}
	if c := calls.Load(); c != 0 {
		t.Errorf("the backend was called %d times", c)
	}
	servedAfter(t, ts)
}

// Request trailers, and "te: trailers", break nothing: the body before the
// trailers reaches the worker whole, whether the trailers come from
// net/http's client or in a raw HEADERS frame after the DATA.
func TestHTTP2RequestTrailers(t *testing.T) {
	var sn seen
	ts := startServer(t, Config{H2C: true}, echoBackend(t, &sn))
	req, err := http.NewRequest("POST", ts.url("/echo"), io.MultiReader(strings.NewReader("hello "), strings.NewReader("trailers")))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Te", "trailers")
	req.Trailer = http.Header{"X-Checksum": {"abc"}}
	resp, err := client(t, nil, "h2c").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 201 || string(body) != "hello trailers" {
		t.Fatalf("%s %d %q, want HTTP/2 201 \"hello trailers\"", resp.Proto, resp.StatusCode, body)
	}
	if h, b := sn.last(t); string(b) != "hello trailers" || header(h, "te") != "trailers" {
		t.Errorf("the worker saw body %q, te %q", b, header(h, "te"))
	}

	p := dialH2C(t, ts)
	err = p.write(func() error {
		if err := p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: p.block("POST", "/echo", "te", "trailers"), EndHeaders: true}); err != nil {
			return err
		}
		if err := p.fr.WriteData(1, false, []byte("raw body")); err != nil {
			return err
		}
		p.hb.Reset()
		p.enc.WriteField(hpack.HeaderField{Name: "x-trailer", Value: "v", Sensitive: true})
		return p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: bytes.Clone(p.hb.Bytes()), EndStream: true, EndHeaders: true})
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the answer to the raw request with trailers", func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.ended[1] || p.rst[1] != 0 || p.readErr != nil })
	p.mu.Lock()
	status := p.status[1]
	p.mu.Unlock()
	if status != "201" {
		t.Errorf("raw request with trailers: status %q, want 201", status)
	}
	if _, b := sn.last(t); string(b) != "raw body" {
		t.Errorf("the worker saw body %q, want \"raw body\"", b)
	}
}

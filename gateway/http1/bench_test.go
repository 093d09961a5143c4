package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"
)

// A typical keep-alive browser-ish GET with 8 header fields.
var benchGET = []byte(crlf("GET /api/users/42?fields=name,email HTTP/1.1\n" +
	"Host: example.com\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\n" +
	"Accept: application/json\n" +
	"Accept-Encoding: gzip, deflate, br\n" +
	"Accept-Language: en-US,en;q=0.9\n" +
	"Connection: keep-alive\n" +
	"Cookie: session=0123456789abcdef; theme=dark\n" +
	"Referer: https://example.com/users\n\n"))

var benchPOST = func() []byte {
	head := crlf("POST /upload HTTP/1.1\nHost: example.com\nContent-Type: application/octet-stream\nContent-Length: 4096\n\n")
	return append([]byte(head), bytes.Repeat([]byte("x"), 4096)...)
}()

var (
	hdrContentType = []byte("Content-Type")
	hdrJSON        = []byte("application/json")
)

var benchBody = []byte(`{"id":42,"name":"Ada","email":"ada@example.com"}`)

// parseOne parses one complete message from b and returns the body size.
func parseOne(p *Parser, req *Request, b []byte) (int, error) {
	body := 0
	for {
		ev, n, err := p.Next(b, req)
		if err != nil {
			return body, err
		}
		b = b[n:]
		switch ev.Kind {
		case EventBody:
			body += len(ev.Data)
		case EventEnd:
			return body, nil
		}
	}
}

type benchConn struct {
	p     Parser
	req   Request
	out   []byte
	dates DateCache
	hdr   [1]Header
}

func (c *benchConn) serve(b []byte, now time.Time) error {
	if _, err := parseOne(&c.p, &c.req, b); err != nil {
		return err
	}
	c.hdr[0] = Header{Name: hdrContentType, Value: hdrJSON}
	h := ResponseHead{Status: 200, Header: c.hdr[:], ContentLength: int64(len(benchBody)), Date: c.dates.Value(now)}
	out, _, err := h.Append(c.out[:0], &c.req)
	if err != nil {
		return err
	}
	c.out = append(out, benchBody...)
	return nil
}

// The steady state of a keep-alive connection — parse a GET with 8 header
// fields, serialize a small response — allocates nothing.
func TestZeroAllocSteadyState(t *testing.T) {
	c := new(benchConn)
	now := time.Now()
	if err := c.serve(benchGET, now); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := c.serve(benchGET, now); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per request, want 0", allocs)
	}
	if len(c.req.Headers) != 8 || !c.req.KeepAlive {
		t.Fatalf("%+v", c.req)
	}
	// POST with a 4 KiB body, too.
	var p Parser
	var req Request
	allocs = testing.AllocsPerRun(1000, func() {
		if n, err := parseOne(&p, &req, benchPOST); err != nil || n != 4096 {
			t.Fatal(n, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per POST, want 0", allocs)
	}
}

func BenchmarkParseGET(b *testing.B) {
	b.Run("covet", func(b *testing.B) {
		var p Parser
		var req Request
		b.SetBytes(int64(len(benchGET)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseOne(&p, &req, benchGET); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("nethttp", func(b *testing.B) {
		rd := bytes.NewReader(benchGET)
		br := bufio.NewReader(rd)
		b.SetBytes(int64(len(benchGET)))
		b.ReportAllocs()
		for b.Loop() {
			rd.Reset(benchGET)
			br.Reset(rd)
			req, err := http.ReadRequest(br)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, req.Body)
		}
	})
}

func BenchmarkParsePOST4K(b *testing.B) {
	b.Run("covet", func(b *testing.B) {
		var p Parser
		var req Request
		b.SetBytes(int64(len(benchPOST)))
		b.ReportAllocs()
		for b.Loop() {
			if n, err := parseOne(&p, &req, benchPOST); err != nil || n != 4096 {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("nethttp", func(b *testing.B) {
		rd := bytes.NewReader(benchPOST)
		br := bufio.NewReaderSize(rd, 8192)
		b.SetBytes(int64(len(benchPOST)))
		b.ReportAllocs()
		for b.Loop() {
			rd.Reset(benchPOST)
			br.Reset(rd)
			req, err := http.ReadRequest(br)
			if err != nil {
				b.Fatal(err)
			}
			if n, _ := io.Copy(io.Discard, req.Body); n != 4096 {
				b.Fatal(n)
			}
		}
	})
}

func BenchmarkSerializeResponse(b *testing.B) {
	b.Run("covet", func(b *testing.B) {
		c := new(benchConn)
		c.serve(benchGET, time.Now())
		hdr := []Header{{Name: []byte("Content-Type"), Value: []byte("application/json")}}
		b.ReportAllocs()
		for b.Loop() {
			h := ResponseHead{Status: 200, Header: hdr, ContentLength: int64(len(benchBody)), Date: c.dates.Value(time.Now())}
			out, _, err := h.Append(c.out[:0], &c.req)
			if err != nil {
				b.Fatal(err)
			}
			c.out = append(out, benchBody...)
		}
	})
	b.Run("nethttp", func(b *testing.B) {
		var buf bytes.Buffer
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			resp := http.Response{
				StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1,
				Header:        http.Header{"Content-Type": {"application/json"}, "Date": {time.Now().UTC().Format(http.TimeFormat)}},
				ContentLength: int64(len(benchBody)),
				Body:          io.NopCloser(bytes.NewReader(benchBody)),
			}
			if err := resp.Write(&buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Ten pipelined GETs in one buffer.
func BenchmarkParsePipelined10(b *testing.B) {
	data := bytes.Repeat(benchGET, 10)
	b.Run("covet", func(b *testing.B) {
		var p Parser
		var req Request
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			rest := data
			for len(rest) > 0 {
				ev, n, err := p.Next(rest, &req)
				if err != nil {
					b.Fatal(err)
				}
				_ = ev
				rest = rest[n:]
			}
			if _, _, err := p.Next(nil, &req); err != nil { // final EventEnd
				b.Fatal(err)
			}
		}
	})
	b.Run("nethttp", func(b *testing.B) {
		rd := bytes.NewReader(data)
		br := bufio.NewReader(rd)
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			rd.Reset(data)
			br.Reset(rd)
			for range 10 {
				req, err := http.ReadRequest(br)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, req.Body)
			}
		}
	})
}

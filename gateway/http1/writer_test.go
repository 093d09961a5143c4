package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func reqFor(t *testing.T, s string) *Request {
	t.Helper()
	var p Parser
	req := new(Request)
	if _, _, err := p.Next([]byte(crlf(s)), req); err != nil {
		t.Fatal(err)
	}
	return req
}

func h(name, value string) Header { return Header{Name: []byte(name), Value: []byte(value)} }

func TestResponseHead(t *testing.T) {
	get11 := "GET / HTTP/1.1\nHost: a\n\n"
	cases := []struct {
		name    string
		req     string // "" = nil request
		head    ResponseHead
		want    string
		framing Framing
		close   bool
	}{
		{"length", get11, ResponseHead{Status: 200, ContentLength: 5, Header: []Header{h("Content-Type", "text/plain")}},
			"HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 5\n\n", FramingLength, false},
		{"nil request", "", ResponseHead{Status: 404, ContentLength: 0},
			"HTTP/1.1 404 Not Found\nContent-Length: 0\n\n", FramingLength, false},
		{"HEAD keeps Content-Length, no body", "HEAD / HTTP/1.1\nHost: a\n\n", ResponseHead{Status: 200, ContentLength: 1234},
			"HTTP/1.1 200 OK\nContent-Length: 1234\n\n", FramingNone, false},
		{"chunked", get11, ResponseHead{Status: 200, ContentLength: -1},
			"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n", FramingChunked, false},
		{"1.0 unknown length closes", "GET / HTTP/1.0\nConnection: keep-alive\n\n", ResponseHead{Status: 200, ContentLength: -1},
			"HTTP/1.1 200 OK\nConnection: close\n\n", FramingClose, true},
		{"1.0 keep-alive", "GET / HTTP/1.0\nConnection: keep-alive\n\n", ResponseHead{Status: 200, ContentLength: 2},
			"HTTP/1.1 200 OK\nContent-Length: 2\nConnection: keep-alive\n\n", FramingLength, false},
		{"request asked close", "GET / HTTP/1.1\nHost: a\nConnection: close\n\n", ResponseHead{Status: 200, ContentLength: 0},
			"HTTP/1.1 200 OK\nContent-Length: 0\nConnection: close\n\n", FramingLength, true},
		{"handler asked close", get11, ResponseHead{Status: 503, ContentLength: 0, Close: true, Header: []Header{h("Retry-After", "1")}},
			"HTTP/1.1 503 Service Unavailable\nRetry-After: 1\nContent-Length: 0\nConnection: close\n\n", FramingLength, true},
		{"204 no framing", get11, ResponseHead{Status: 204, ContentLength: 0},
			"HTTP/1.1 204 No Content\n\n", FramingNone, false},
		{"304 no framing", get11, ResponseHead{Status: 304, ContentLength: -1},
			"HTTP/1.1 304 Not Modified\n\n", FramingNone, false},
		{"101 may set Connection", get11, ResponseHead{Status: 101, Header: []Header{h("Connection", "Upgrade"), h("Upgrade", "websocket")}},
			"HTTP/1.1 101 Switching Protocols\nConnection: Upgrade\nUpgrade: websocket\n\n", FramingNone, false},
		{"date and custom reason", get11, ResponseHead{Status: 299, Reason: "Fine", ContentLength: 0, Date: []byte("Sun, 06 Nov 1994 08:49:37 GMT")},
			"HTTP/1.1 299 Fine\nDate: Sun, 06 Nov 1994 08:49:37 GMT\nContent-Length: 0\n\n", FramingLength, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var req *Request
			if tc.req != "" {
				req = reqFor(t, tc.req)
			}
			hd := tc.head
			out, f, err := hd.Append([]byte("prefix"), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(out[6:]); got != crlf(tc.want) {
				t.Fatalf("got %q\nwant %q", got, crlf(tc.want))
			}
			if f != tc.framing || hd.Close != tc.close {
				t.Fatalf("framing %v close %v", f, hd.Close)
			}
		})
	}
}

func TestResponseHeadRejects(t *testing.T) {
	for _, tc := range []struct {
		head ResponseHead
		err  error
	}{
		{ResponseHead{Status: 99}, ErrInvalidStatus},
		{ResponseHead{Status: 1000}, ErrInvalidStatus},
		{ResponseHead{Status: 200, Header: []Header{h("X", "a\r\nSet-Cookie: evil")}}, ErrInvalidField},
		{ResponseHead{Status: 200, Header: []Header{h("X\r\nY", "a")}}, ErrInvalidField},
		{ResponseHead{Status: 200, Header: []Header{h("", "a")}}, ErrInvalidField},
		{ResponseHead{Status: 200, Reason: "OK\r\nX: y"}, ErrInvalidField},
		{ResponseHead{Status: 200, Header: []Header{h("content-length", "1")}}, ErrReservedField},
		{ResponseHead{Status: 200, Header: []Header{h("Transfer-Encoding", "chunked")}}, ErrReservedField},
		{ResponseHead{Status: 200, Header: []Header{h("Connection", "close")}}, ErrReservedField},
	} {
		out, _, err := tc.head.Append([]byte("x"), nil)
		if err != tc.err || string(out) != "x" {
			t.Errorf("%+v: err %v out %q", tc.head, err, out)
		}
	}
	if _, err := AppendLastChunk(nil, []Header{h("X", "\n")}); err != ErrInvalidField {
		t.Error(err)
	}
}

// A chunked response written by the writer reads back through net/http.
func TestChunkedResponseRoundTrip(t *testing.T) {
	hd := ResponseHead{Status: 200, ContentLength: -1, Header: []Header{h("Trailer", "X-Sum")}}
	out, f, err := hd.Append(nil, nil)
	if err != nil || f != FramingChunked {
		t.Fatal(err, f)
	}
	out = AppendChunk(out, []byte("hello "))
	out = AppendChunk(out, nil) // no-op
	out = AppendChunkHeader(out, 5)
	out = append(out, "world"...)
	out = AppendChunkEnd(out)
	out, err = AppendLastChunk(out, []Header{h("X-Sum", "42")})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "hello world" || resp.Trailer.Get("X-Sum") != "42" {
		t.Fatalf("%q %v %v", body, err, resp.Trailer)
	}
}

func TestAppendContinue(t *testing.T) {
	if got := string(AppendContinue(nil)); got != "HTTP/1.1 100 Continue\r\n\r\n" {
		t.Fatal(got)
	}
}

func TestAppendError(t *testing.T) {
	for _, tc := range ruleCases {
		if tc.status == 0 {
			continue
		}
		e := &Error{Status: tc.status, Reason: tc.reason, Close: tc.close}
		out := AppendError(nil, e, []byte("Sun, 06 Nov 1994 08:49:37 GMT"))
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.status || resp.Close != tc.close || !strings.Contains(string(body), tc.reason) ||
			resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || resp.Header.Get("Date") == "" {
			t.Fatalf("%s: %q", tc.name, out)
		}
	}
	got := string(AppendError(nil, errUnsupportedVersion, nil))
	want := "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 48\r\nConnection: close\r\n\r\nHTTP Version Not Supported: unsupported_version\n"
	if got != want {
		t.Fatalf("%q", got)
	}
}

func TestDateCache(t *testing.T) {
	var c DateCache
	now := time.Date(1994, 11, 6, 8, 49, 37, 0, time.FixedZone("X", 3600))
	v := c.Value(now)
	if string(v) != "Sun, 06 Nov 1994 07:49:37 GMT" {
		t.Fatal(string(v))
	}
	if v2 := c.Value(now.Add(500 * time.Millisecond)); &v2[0] != &v[0] {
		t.Fatal("not cached within the second")
	}
	if v3 := c.Value(now.Add(time.Second)); string(v3) != "Sun, 06 Nov 1994 07:49:38 GMT" || string(v) != "Sun, 06 Nov 1994 07:49:37 GMT" {
		t.Fatal(string(v3), string(v))
	}
}

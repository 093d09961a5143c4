package http1

import (
	"errors"
	"strings"
	"testing"
)

type ruleCase struct {
	name   string
	in     string // "\n" is turned into CRLF unless raw
	raw    bool
	lim    Limits
	status int    // 0: accepted
	reason string // expected Error.Reason when status != 0
	close  bool   // rejection: Error.Close; accepted: !KeepAlive of the last message
	check  func(t *testing.T, m []msg)
}

func bigHeaders(n, size int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString("X-F: ")
		b.WriteString(strings.Repeat("v", size))
		b.WriteString("\n")
	}
	return b.String()
}

var ruleCases = []ruleCase{
	// Accepted, keep-alive decisions.
	{name: "simple GET", in: "GET / HTTP/1.1\nHost: a\n\n"},
	{name: "1.1 Connection close", in: "GET / HTTP/1.1\nHost: a\nConnection: close\n\n", close: true},
	{name: "1.1 Connection list case-insensitive", in: "GET / HTTP/1.1\nHost: a\nConnection: foo, CLOSE\n\n", close: true},
	{name: "1.1 Connection keep-alive", in: "GET / HTTP/1.1\nHost: a\nConnection: keep-alive\n\n"},
	{name: "1.0 closes by default", in: "GET / HTTP/1.0\n\n", close: true},
	{name: "1.0 keep-alive", in: "GET / HTTP/1.0\nConnection: Keep-Alive\n\n"},
	{name: "1.0 keep-alive over two lines", in: "GET / HTTP/1.0\nConnection: x\nConnection: ,keep-alive,\n\n"},
	{name: "1.0 keep-alive and close", in: "GET / HTTP/1.0\nConnection: keep-alive, close\n\n", close: true},
	{name: "1.x minor > 1 served as 1.1", in: "GET / HTTP/1.2\nHost: a\n\n", check: func(t *testing.T, m []msg) {
		if m[0].Minor != 2 || !m[0].KeepAlive {
			t.Errorf("got %+v", m[0])
		}
	}},
	{name: "HEAD", in: "HEAD /x HTTP/1.1\nHost: a\n\n"},
	{name: "leading empty line ignored", in: "\n\nGET / HTTP/1.1\nHost: a\n\n"},
	{name: "empty Host allowed", in: "GET / HTTP/1.1\nHost:\n\n"},
	{name: "1.0 without Host", in: "GET / HTTP/1.0\nConnection: keep-alive\n\n"},
	{name: "obs-text and HTAB in value", in: "GET / HTTP/1.1\nHost: a\nX: a\tb\xff\n\n"},
	{name: "value OWS trimmed", in: "GET / HTTP/1.1\nHost: a\nX: \t v \t\n\n", check: func(t *testing.T, m []msg) {
		if m[0].Headers[1] != "X: v" {
			t.Errorf("got %q", m[0].Headers[1])
		}
	}},
	{name: "POST Content-Length", in: "POST /p HTTP/1.1\nHost: a\nContent-Length: 5\n\nhello", check: func(t *testing.T, m []msg) {
		if m[0].Body != "hello" {
			t.Errorf("body %q", m[0].Body)
		}
	}},
	{name: "Content-Length leading zeros", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 003\n\nabc"},
	{name: "chunked with ext and trailers", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n5;a=b ; c=\"d\"\nhello\n6\n world\n0\nX-T: 1\n\n", check: func(t *testing.T, m []msg) {
		if m[0].Body != "hello world" || len(m[0].Trailers) != 1 || m[0].Trailers[0] != "X-T: 1" || !m[0].Chunked || m[0].ContentLength != -1 {
			t.Errorf("got %+v", m[0])
		}
	}},
	{name: "chunked case-insensitive, empty list elements", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: , CHUNKED\n\n0\n\n"},
	{name: "chunk size uppercase hex, leading zeros", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n000A\n0123456789\n0\n\n"},
	{name: "Expect 100-continue", in: "POST / HTTP/1.1\nHost: a\nExpect: 100-Continue\nContent-Length: 1\n\nx", check: func(t *testing.T, m []msg) {
		if !m[0].Expect {
			t.Error("ExpectContinue not set")
		}
	}},
	{name: "Expect 100-continue ignored in 1.0", in: "POST / HTTP/1.0\nExpect: 100-continue\nContent-Length: 1\n\nx", close: true, check: func(t *testing.T, m []msg) {
		if m[0].Expect {
			t.Error("ExpectContinue set for HTTP/1.0")
		}
	}},
	{name: "Upgrade", in: "GET /ws HTTP/1.1\nHost: a\nConnection: keep-alive, Upgrade\nUpgrade: websocket\n\n", check: func(t *testing.T, m []msg) {
		if !m[0].Upg {
			t.Error("Upgrade not set")
		}
	}},
	{name: "origin-form path and query", in: "GET /a/b?x=1&y HTTP/1.1\nHost: a\n\n", check: func(t *testing.T, m []msg) {
		if m[0].Path != "/a/b" || m[0].Query != "x=1&y" || m[0].Form != FormOrigin {
			t.Errorf("got %+v", m[0])
		}
	}},
	{name: "absolute-form", in: "GET http://example.com:8080/p?q HTTP/1.1\nHost: other\n\n", check: func(t *testing.T, m []msg) {
		if m[0].Host != "example.com:8080" || m[0].Path != "/p" || m[0].Query != "q" || m[0].Form != FormAbsolute {
			t.Errorf("got %+v", m[0])
		}
	}},
	{name: "absolute-form empty path", in: "GET https://[::1]:443?q HTTP/1.1\nHost: x\n\n", check: func(t *testing.T, m []msg) {
		if m[0].Host != "[::1]:443" || m[0].Path != "/" || m[0].Query != "q" {
			t.Errorf("got %+v", m[0])
		}
	}},
	{name: "CONNECT authority-form", in: "CONNECT example.com:443 HTTP/1.1\nHost: example.com:443\n\n", check: func(t *testing.T, m []msg) {
		if m[0].Form != FormAuthority || m[0].Host != "example.com:443" || m[0].Path != "" {
			t.Errorf("got %+v", m[0])
		}
	}},
	{name: "OPTIONS asterisk-form", in: "OPTIONS * HTTP/1.1\nHost: a\n\n"},
	{name: "extension method", in: "PURGE-ALL /x HTTP/1.1\nHost: a\n\n"},
	{name: "GET with body", in: "GET / HTTP/1.1\nHost: a\nContent-Length: 2\n\nhi"},

	// Framing: Content-Length and Transfer-Encoding.
	{name: "CL and TE", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 3\nTransfer-Encoding: chunked\n\n0\n\n", status: 400, reason: "content_length_with_transfer_encoding", close: true},
	{name: "TE and CL", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nContent-Length: 0\n\n", status: 400, reason: "content_length_with_transfer_encoding", close: true},
	// Content-Length is one plain decimal on one line; no folding (issue 18).
	{name: "CL differing duplicates", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 3\nContent-Length: 4\n\nabcd", status: 400, reason: "duplicate_content_length", close: true},
	{name: "CL identical duplicate lines", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 3\ncontent-length: 3\n\nabc", status: 400, reason: "duplicate_content_length", close: true},
	{name: "CL identical duplicate lines apart", in: "POST / HTTP/1.1\nContent-Length: 0\nHost: a\nContent-Length: 0\n\n", status: 400, reason: "duplicate_content_length", close: true},
	{name: "CL differing list", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 3, 4\n\nabcd", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL identical list", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 5, 5\n\nhello", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL identical list no space", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 5,5\n\nhello", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL zero list", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 0, 0\n\n", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL inner tab", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 1\t2\n\nx", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL decimal point", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 1.0\n\nx", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL hex", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 0x1\n\nx", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL minus zero", in: "POST / HTTP/1.1\nHost: a\nContent-Length: -0\n\n", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL not a number", in: "POST / HTTP/1.1\nHost: a\nContent-Length: abc\n\n", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL negative", in: "POST / HTTP/1.1\nHost: a\nContent-Length: -1\n\n", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL plus sign", in: "POST / HTTP/1.1\nHost: a\nContent-Length: +1\n\nx", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL empty", in: "POST / HTTP/1.1\nHost: a\nContent-Length:\n\n", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL empty list element", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 1,,1\n\nx", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL trailing comma", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 1,\n\nx", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL inner space", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 1 2\n\nx", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL overflow", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 9223372036854775808\n\n", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL 20 digits", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 00000000000000000001\n\n", status: 400, reason: "invalid_content_length", close: true},
	{name: "CL over body limit", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 11\n\n", lim: Limits{MaxBodyBytes: 10}, status: 413, reason: "body_too_large", close: true},
	{name: "CL max int64 over default limit", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 9223372036854775807\n\n", status: 413, reason: "body_too_large", close: true},
	{name: "TE unknown only", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: gzip\n\n", status: 400, reason: "chunked_not_final", close: true},
	{name: "TE unknown then chunked", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: gzip, chunked\n\n0\n\n", status: 501, reason: "unsupported_transfer_coding", close: true},
	{name: "TE unknown on own line then chunked", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: x-custom\nTransfer-Encoding: chunked\n\n0\n\n", status: 501, reason: "unsupported_transfer_coding", close: true},
	{name: "TE chunked not final", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked, gzip\n\n", status: 400, reason: "chunked_not_final", close: true},
	{name: "TE chunked not final across lines", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nTransfer-Encoding: identity\n\n", status: 400, reason: "chunked_not_final", close: true},
	{name: "TE chunked twice", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked, chunked\n\n0\n\n", status: 400, reason: "chunked_not_final", close: true},
	{name: "TE chunked with parameter", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked;q=1\n\n0\n\n", status: 400, reason: "chunked_not_final", close: true},
	{name: "TE empty", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding:\n\n", status: 400, reason: "chunked_not_final", close: true},
	{name: "TE in HTTP/1.0", in: "POST / HTTP/1.0\nTransfer-Encoding: chunked\n\n0\n\n", status: 400, reason: "transfer_encoding_http10", close: true},

	// Chunked body.
	{name: "chunk size not hex", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\nzz\n", status: 400, reason: "invalid_chunk_size", close: true},
	{name: "chunk size empty", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n\nx", status: 400, reason: "invalid_chunk_size", close: true},
	{name: "chunk size 0x prefix", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n0x5\nhello\n0\n\n", status: 400, reason: "invalid_chunk_size", close: true},
	{name: "chunk size with sign", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n-5\n", status: 400, reason: "invalid_chunk_size", close: true},
	{name: "chunk size space then junk", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n5 x\nhello\n0\n\n", status: 400, reason: "invalid_chunk_size", close: true},
	{name: "chunk size overflow", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n10000000000000000\n", status: 400, reason: "chunk_size_overflow", close: true},
	{name: "chunk size over body limit", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\nfffffffffffffff\n", status: 413, reason: "body_too_large", close: true},
	{name: "chunked total over body limit", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n6\nabcdef\n5\nabcde\n0\n\n", lim: Limits{MaxBodyBytes: 10}, status: 413, reason: "body_too_large", close: true},
	{name: "chunk ext over limit", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n1;" + strings.Repeat("a", 20) + "\nx\n0\n\n", lim: Limits{MaxChunkExtBytes: 16}, status: 400, reason: "chunk_ext_too_long", close: true},
	{name: "chunk ext summed over chunks", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n1;aaaaaaaaa\nx\n1;aaaaaaaaa\nx\n0\n\n", lim: Limits{MaxChunkExtBytes: 16}, status: 400, reason: "chunk_ext_too_long", close: true},
	{name: "chunk ext CTL", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n1;a\x01\nx\n0\n\n", status: 400, reason: "invalid_chunk_ext", close: true},
	{name: "chunk ext bare CR", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n1;a\rb\nx\n0\n\n", status: 400, reason: "bare_cr", close: true},
	{name: "chunk line bare LF", raw: true, in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n", status: 400, reason: "bare_lf", close: true},
	{name: "chunk data not followed by CRLF", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n1\nxy\n0\n\n", status: 400, reason: "invalid_chunk_data_end", close: true},
	{name: "chunk data followed by CR only", raw: true, in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\rX0\r\n\r\n", status: 400, reason: "invalid_chunk_data_end", close: true},
	{name: "trailer too large", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n0\nX: " + strings.Repeat("a", 40) + "\n\n", lim: Limits{MaxTrailerBytes: 32}, status: 431, reason: "trailer_too_large", close: true},
	{name: "too many trailers", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n0\nA: 1\nB: 2\nC: 3\n\n", lim: Limits{MaxHeaderFields: 2}, status: 431, reason: "too_many_trailer_fields", close: true},
	{name: "trailer obs-fold", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n0\nA: 1\n 2\n\n", status: 400, reason: "obs_fold", close: true},

	// Head syntax.
	{name: "bare CR in request line", raw: true, in: "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: "bare_cr", close: true},
	{name: "bare CR ends request line", raw: true, in: "GET / HTTP/1.1\r\rHost: a\r\n\r\n", status: 400, reason: "bare_cr", close: true},
	{name: "bare CR in field value", raw: true, in: "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", status: 400, reason: "bare_cr", close: true},
	{name: "bare CR as field line end", raw: true, in: "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", status: 400, reason: "bare_cr", close: true},
	{name: "bare LF request line", raw: true, in: "GET / HTTP/1.1\nHost: a\r\n\r\n", status: 400, reason: "bare_lf", close: true},
	{name: "bare LF field line", raw: true, in: "GET / HTTP/1.1\r\nHost: a\n\r\n", status: 400, reason: "bare_lf", close: true},
	{name: "bare LF end of head", raw: true, in: "GET / HTTP/1.1\r\nHost: a\r\n\n", status: 400, reason: "bare_lf", close: true},
	{name: "obs-fold", in: "GET / HTTP/1.1\nHost: a\nX: a\n b\n\n", status: 400, reason: "obs_fold", close: true},
	{name: "obs-fold with tab", in: "GET / HTTP/1.1\nHost: a\nX: a\n\tb\n\n", status: 400, reason: "obs_fold", close: true},
	{name: "whitespace before first field", in: "GET / HTTP/1.1\n Host: a\n\n", status: 400, reason: "obs_fold", close: true},
	{name: "space before colon", in: "GET / HTTP/1.1\nHost : a\n\n", status: 400, reason: "space_before_colon", close: true},
	{name: "tab before colon", in: "GET / HTTP/1.1\nHost: a\nContent-Length\t: 0\n\n", status: 400, reason: "space_before_colon", close: true},
	{name: "invalid name char", in: "GET / HTTP/1.1\nHost: a\nX(y): 1\n\n", status: 400, reason: "invalid_field_name", close: true},
	{name: "space inside name", in: "GET / HTTP/1.1\nHost: a\nX Y: 1\n\n", status: 400, reason: "invalid_field_name", close: true},
	{name: "non-ASCII name", in: "GET / HTTP/1.1\nHost: a\nX\xc3\xa9: 1\n\n", status: 400, reason: "invalid_field_name", close: true},
	{name: "missing colon", in: "GET / HTTP/1.1\nHost: a\nNoColon\n\n", status: 400, reason: "invalid_field_name", close: true},
	{name: "empty name", in: "GET / HTTP/1.1\nHost: a\n: v\n\n", status: 400, reason: "invalid_field_name", close: true},
	{name: "NUL in value", in: "GET / HTTP/1.1\nHost: a\nX: a\x00b\n\n", status: 400, reason: "invalid_field_value", close: true},
	{name: "DEL in value", in: "GET / HTTP/1.1\nHost: a\nX: a\x7fb\n\n", status: 400, reason: "invalid_field_value", close: true},
	{name: "CTL in value", in: "GET / HTTP/1.1\nHost: a\nX: \x1b[0m\n\n", status: 400, reason: "invalid_field_value", close: true},
	{name: "header section too large", in: "GET / HTTP/1.1\nHost: a\n" + bigHeaders(4, 40) + "\n", lim: Limits{MaxHeaderBytes: 100}, status: 431, reason: "header_too_large", close: true},
	{name: "header section too large unterminated", in: "GET / HTTP/1.1\nHost: a\nX: " + strings.Repeat("v", 200), lim: Limits{MaxHeaderBytes: 100}, status: 431, reason: "header_too_large", close: true},
	{name: "header section at limit", in: "GET / HTTP/1.1\nHost: a\nX: " + strings.Repeat("v", 100-9-5-2) + "\n\n", lim: Limits{MaxHeaderBytes: 100}},
	{name: "header section one over limit", in: "GET / HTTP/1.1\nHost: a\nX: " + strings.Repeat("v", 100-9-5-1) + "\n\n", lim: Limits{MaxHeaderBytes: 100}, status: 431, reason: "header_too_large", close: true},
	{name: "too many fields", in: "GET / HTTP/1.1\nHost: a\n" + bigHeaders(3, 1) + "\n", lim: Limits{MaxHeaderFields: 3}, status: 431, reason: "too_many_fields", close: true},
	{name: "default field count limit", in: "GET / HTTP/1.1\nHost: a\n" + bigHeaders(100, 1) + "\n", status: 431, reason: "too_many_fields", close: true},

	// Host.
	{name: "missing Host, no body: stays open", in: "GET / HTTP/1.1\n\n", status: 400, reason: "missing_host", close: false},
	{name: "missing Host with body closes", in: "POST / HTTP/1.1\nContent-Length: 1\n\nx", status: 400, reason: "missing_host", close: true},
	{name: "missing Host and Connection close", in: "GET / HTTP/1.1\nConnection: close\n\n", status: 400, reason: "missing_host", close: true},
	{name: "duplicate Host", in: "GET / HTTP/1.1\nHost: a\nhost: a\n\n", status: 400, reason: "duplicate_host", close: false},
	{name: "duplicate Host in 1.0", in: "GET / HTTP/1.0\nHost: a\nHost: b\n\n", status: 400, reason: "duplicate_host", close: true},
	{name: "invalid Host", in: "GET / HTTP/1.1\nHost: a/b\n\n", status: 400, reason: "invalid_host", close: false},
	{name: "invalid Host userinfo", in: "GET / HTTP/1.1\nHost: u@a\n\n", status: 400, reason: "invalid_host", close: false},
	{name: "invalid Host port", in: "GET / HTTP/1.1\nHost: a:8x\n\n", status: 400, reason: "invalid_host", close: false},

	// Request target forms.
	{name: "asterisk for GET", in: "GET * HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_target_form", close: true},
	{name: "authority-form for GET", in: "GET a.com:443 HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_target_form", close: true},
	{name: "origin-form for CONNECT", in: "CONNECT / HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_target_form", close: true},
	{name: "CONNECT without port", in: "CONNECT a.com HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_target_form", close: true},
	{name: "CONNECT absolute-form", in: "CONNECT http://a.com:80/ HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_target_form", close: true},
	{name: "relative target", in: "GET foo/bar HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_target_form", close: true},
	{name: "absolute-form empty authority", in: "GET http:///x HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_target_form", close: true},
	{name: "absolute-form userinfo", in: "GET http://u:p@a/x HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_target_form", close: true},
	{name: "fragment in target", in: "GET /a#b HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_target", close: true},
	{name: "non-ASCII in target", in: "GET /caf\xc3\xa9 HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_target", close: true},
	{name: "CTL in target", in: "GET /a\x01 HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_target", close: true},
	{name: "space in target", in: "GET /a b HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_target", close: true},
	{name: "two spaces after method", in: "GET  / HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_target", close: true},
	{name: "two spaces before version", in: "GET /  HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_target", close: true},
	{name: "no target", in: "GET HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_request_line", close: true},
	{name: "HTTP/0.9 simple request", in: "GET /\n\n", status: 400, reason: "invalid_request_line", close: true},

	// Version.
	{name: "HTTP/2.0", in: "GET / HTTP/2.0\nHost: a\n\n", status: 505, reason: "unsupported_version", close: true},
	{name: "HTTP/0.9", in: "GET / HTTP/0.9\nHost: a\n\n", status: 505, reason: "unsupported_version", close: true},
	{name: "HTTP/3.0", in: "GET / HTTP/3.0\nHost: a\n\n", status: 505, reason: "unsupported_version", close: true},
	{name: "lower-case version", in: "GET / http/1.1\nHost: a\n\n", status: 400, reason: "invalid_version", close: true},
	{name: "two-digit minor", in: "GET / HTTP/1.10\nHost: a\n\n", status: 400, reason: "invalid_version", close: true},
	{name: "version without minor", in: "GET / HTTP/1\nHost: a\n\n", status: 400, reason: "invalid_version", close: true},
	{name: "trailing space after version", in: "GET / HTTP/1.1 \nHost: a\n\n", status: 400, reason: "invalid_version", close: true},

	// Method.
	{name: "method with separator", in: "GE(T / HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_method", close: true},
	{name: "leading space", in: " GET / HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_method", close: true},
	{name: "TLS ClientHello", raw: true, in: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", status: 400, reason: "invalid_method", close: true},
	{name: "empty method", in: " / HTTP/1.1\nHost: a\n\n", status: 400, reason: "invalid_method", close: true},

	// Request line length.
	{name: "request line at limit", in: "GET /" + strings.Repeat("a", 64-len("GET / HTTP/1.1")) + " HTTP/1.1\nHost: a\n\n", lim: Limits{MaxRequestLine: 64}},
	{name: "request line too long", in: "GET /" + strings.Repeat("a", 65-len("GET / HTTP/1.1")) + " HTTP/1.1\nHost: a\n\n", lim: Limits{MaxRequestLine: 64}, status: 414, reason: "request_line_too_long", close: true},
	{name: "request line too long unterminated", in: "GET /" + strings.Repeat("a", 9000), status: 414, reason: "request_line_too_long", close: true},

	// Expect.
	{name: "unknown expectation", in: "GET / HTTP/1.1\nHost: a\nExpect: foo\n\n", status: 417, reason: "expectation_failed", close: false},
	{name: "unknown expectation with body", in: "PUT / HTTP/1.1\nHost: a\nExpect: 100-continue, foo\nContent-Length: 1\n\nx", status: 417, reason: "expectation_failed", close: true},
}

func TestRules(t *testing.T) {
	for _, tc := range ruleCases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if !tc.raw {
				in = crlf(in)
			}
			res := drive([]byte(in), tc.lim, 0, t.Fatalf)
			if tc.status == 0 {
				if len(res.Errs) != 0 || len(res.Msgs) == 0 {
					t.Fatalf("want success, got msgs=%d errs=%v", len(res.Msgs), res.Errs)
				}
				if res.Pending != 0 || (res.Final != StateIdle && !res.Closed) {
					t.Fatalf("%d bytes left unconsumed, final state %v", res.Pending, res.Final)
				}
				last := res.Msgs[len(res.Msgs)-1]
				if last.KeepAlive == tc.close {
					t.Fatalf("KeepAlive=%v, want close=%v", last.KeepAlive, tc.close)
				}
				if tc.check != nil {
					tc.check(t, res.Msgs)
				}
			} else {
				want := []string{errString(tc.status, tc.reason, tc.close)}
				if len(res.Errs) != 1 || res.Errs[0] != want[0] {
					t.Fatalf("errs %v, want %v (msgs %d)", res.Errs, want, len(res.Msgs))
				}
			}
			// The same outcome byte at a time.
			if got := drive([]byte(in), tc.lim, 1, t.Fatalf); got.String() != res.String() {
				t.Fatalf("byte-at-a-time differs:\n%v\n%v", got, res)
			}
		})
	}
}

func errString(status int, reason string, close bool) string {
	e := &Error{Status: status, Reason: reason, Close: close}
	return strings.TrimPrefix(e.Error(), "http1: ") + " close=" + map[bool]string{true: "true", false: "false"}[close]
}

// A rejection that does not close leaves the parser ready for the next
// request on the connection.
func TestRejectionKeepsConnection(t *testing.T) {
	in := crlf("GET /a HTTP/1.1\n\nGET /b HTTP/1.1\nHost: x\n\n")
	res := drive([]byte(in), Limits{}, 0, t.Fatalf)
	if len(res.Errs) != 1 || len(res.Msgs) != 1 || res.Msgs[0].Target != "/b" || res.Closed || res.Pending != 0 {
		t.Fatalf("got %+v", res)
	}
}

// After a closing message nothing more is parsed.
func TestClosedAfterConnectionClose(t *testing.T) {
	in := crlf("GET /a HTTP/1.1\nHost: x\nConnection: close\n\nGET /b HTTP/1.1\nHost: x\n\n")
	res := drive([]byte(in), Limits{}, 0, t.Fatalf)
	if len(res.Msgs) != 1 || !res.Closed || res.Pending == 0 {
		t.Fatalf("got %+v", res)
	}
	p := NewParser(Limits{})
	var req Request
	b := []byte(in)
	for {
		ev, n, err := p.Next(b, &req)
		if err != nil {
			if !errors.Is(err, ErrClosed) || p.State() != StateClosed {
				t.Fatalf("err %v state %v", err, p.State())
			}
			return
		}
		_ = ev
		b = b[n:]
	}
}

func TestStates(t *testing.T) {
	var p Parser // zero value works
	var req Request
	if p.State() != StateIdle {
		t.Fatal(p.State())
	}
	if _, _, err := p.Next(nil, &req); err != ErrNeedMore || p.State() != StateIdle {
		t.Fatal(err, p.State())
	}
	in := []byte(crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 2\n\nhi"))
	if _, _, err := p.Next(in[:5], &req); err != ErrNeedMore || p.State() != StateHead {
		t.Fatal(err, p.State())
	}
	ev, n, err := p.Next(in, &req)
	if err != nil || ev.Kind != EventHead || p.State() != StateBody {
		t.Fatal(ev, err, p.State())
	}
	in = in[n:]
	ev, n, _ = p.Next(in[:1], &req)
	if ev.Kind != EventBody || n != 1 || p.State() != StateBody {
		t.Fatal(ev, n, p.State())
	}
	ev, _, _ = p.Next(in[1:], &req)
	if ev.Kind != EventBody || p.State() != StateBody {
		t.Fatal(ev, p.State())
	}
	if ev, _, _ = p.Next(nil, &req); ev.Kind != EventEnd || p.State() != StateIdle {
		t.Fatal(ev, p.State())
	}
}

func TestBodyRemaining(t *testing.T) {
	var p Parser
	var req Request
	in := []byte(crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 5\n\nhel"))
	if p.BodyRemaining() != 0 {
		t.Fatal(p.BodyRemaining())
	}
	_, n, err := p.Next(in, &req)
	if err != nil || p.BodyRemaining() != 5 {
		t.Fatal(err, p.BodyRemaining())
	}
	if _, _, _ = p.Next(in[n:], nil); p.BodyRemaining() != 2 {
		t.Fatal(p.BodyRemaining())
	}
	// The rest, read by the caller into its own buffer, comes back whole.
	own := []byte("lo")
	ev, k, err := p.Next(own, nil)
	if err != nil || ev.Kind != EventBody || k != 2 || &ev.Data[0] != &own[0] || p.BodyRemaining() != 0 {
		t.Fatal(ev, k, err, p.BodyRemaining())
	}
	// Chunked bodies have no remaining count.
	in = []byte(crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n5\nhel"))
	p.Reset()
	if _, _, err := p.Next(in, &req); err != nil || p.State() != StateBody || p.BodyRemaining() != 0 {
		t.Fatal(err, p.State(), p.BodyRemaining())
	}
}

func TestRequestOwnsItsBytes(t *testing.T) {
	in := []byte(crlf("GET /x?y HTTP/1.1\nHost: h\nA: b\n\n"))
	var p Parser
	var req Request
	if _, _, err := p.Next(in, &req); err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = '!'
	}
	if string(req.Method) != "GET" || string(req.Path) != "/x" || string(req.Query) != "y" ||
		string(req.Host) != "h" || string(req.Header("a")) != "b" {
		t.Fatalf("request aliases the input: %+v", req)
	}
	// Appending to a field must not clobber its neighbours in the arena.
	_ = append(req.Method, "XXXX"...)
	if string(req.Target) != "/x?y" {
		t.Fatal("append clobbered arena")
	}
}

func TestReasonsAndLimits(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Reasons() {
		if seen[r] {
			t.Fatalf("duplicate reason %q", r)
		}
		seen[r] = true
	}
	for _, tc := range ruleCases {
		if tc.status != 0 && !seen[tc.reason] {
			t.Errorf("reason %q not in Reasons()", tc.reason)
		}
	}
	if (Limits{MaxHeaderBytes: -1}).Validate() == nil || (Limits{}).Validate() != nil {
		t.Fatal("Validate")
	}
	d := Limits{}.WithDefaults()
	if d.MaxRequestLine != 8192 || d.MaxHeaderBytes != 65536 || d.MaxHeaderFields != 100 ||
		d.MaxBodyBytes != 10<<20 || d.MaxChunkExtBytes != 4096 || d.MaxTrailerBytes != 16384 {
		t.Fatalf("defaults %+v", d)
	}
}

func TestKnownMethod(t *testing.T) {
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"} {
		if name, ok := KnownMethod(m); !ok || name != m {
			t.Errorf("KnownMethod(%q) = %q, %v; want %q, true", m, name, ok, m)
		}
	}
	for _, m := range []string{"get", "PROPFIND", "GETX", ""} { // methods are case-sensitive
		if name, ok := KnownMethod(m); ok {
			t.Errorf("KnownMethod(%q) = %q, true; want false", m, name)
		}
	}
}

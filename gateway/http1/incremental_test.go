package http1

import (
	"math/rand"
	"testing"
)

var validStreams = map[string]string{
	"simple GET":         "GET /index.html?x=1 HTTP/1.1\nHost: example.com\nUser-Agent: t\nAccept: */*\n\n",
	"POST length":        "POST /submit HTTP/1.1\nHost: example.com\nContent-Type: text/plain\nContent-Length: 11\n\nhello world",
	"chunked trailers":   "POST /up HTTP/1.1\nHost: example.com\nTransfer-Encoding: chunked\nTrailer: X-Sum\n\n4;ext=1\nWiki\n5\npedia\nE\n in\n\nchunks.\n0\nX-Sum: abc\nX-Other: d\n\n",
	"pipelined trio":     "GET /1 HTTP/1.1\nHost: a\n\nPOST /2 HTTP/1.1\nHost: a\nContent-Length: 3\n\nabcPUT /3 HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n3\nxyz\n0\n\n",
	"HEAD and 1.0 k-a":   "HEAD / HTTP/1.1\nHost: a\n\nGET / HTTP/1.0\nConnection: keep-alive\n\n",
	"leading empty ln":   "\nGET / HTTP/1.1\nHost: a\n\n",
	"expect continue":    "PUT /f HTTP/1.1\nHost: a\nExpect: 100-continue\nContent-Length: 2\n\nok",
	"chunked no trailer": "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n1\na\n0\n\n",
}

// Every truncated prefix of a valid stream is "need more": never an error,
// never a panic, and the messages completed so far are a prefix of the
// complete parse. Feeding byte by byte, or in random pieces, gives exactly
// the one-shot result.
func TestTruncatedPrefixes(t *testing.T) {
	for name, s := range validStreams {
		t.Run(name, func(t *testing.T) {
			data := []byte(crlf(s))
			full := drive(data, Limits{}, 0, t.Fatalf)
			if len(full.Errs) != 0 || full.Closed || full.Pending != 0 || full.Consumed != len(data) {
				t.Fatalf("full parse: %+v", full)
			}
			for k := 0; k < len(data); k++ {
				part := drive(data[:k], Limits{}, 0, t.Fatalf)
				if len(part.Errs) != 0 || part.Closed {
					t.Fatalf("prefix %d: %+v", k, part)
				}
				if part.Consumed+part.Pending != k {
					t.Fatalf("prefix %d: consumed %d pending %d", k, part.Consumed, part.Pending)
				}
				// Completed messages match the full parse (the last may be partial).
				for i := range part.Msgs {
					if i >= len(full.Msgs) {
						t.Fatalf("prefix %d: extra message", k)
					}
					got, want := part.Msgs[i], full.Msgs[i]
					if got.Method != want.Method || got.Target != want.Target || len(got.Body) > len(want.Body) ||
						want.Body[:len(got.Body)] != got.Body {
						t.Fatalf("prefix %d: message %d %+v vs %+v", k, i, got, want)
					}
				}
			}
			if got := drive(data, Limits{}, 1, t.Fatalf); got.String() != full.String() {
				t.Fatalf("byte at a time:\n%v\nwant\n%v", got, full)
			}
			rng := rand.New(rand.NewSource(1))
			for i := 0; i < 50; i++ {
				if got := drive(data, Limits{}, 1+rng.Intn(17), t.Fatalf); got.String() != full.String() {
					t.Fatalf("pieces:\n%v\nwant\n%v", got, full)
				}
			}
		})
	}
}

// Trailers are stored in the request that received the head, and the
// pipelined trio yields three messages in order.
func TestPipelinedOrder(t *testing.T) {
	res := drive([]byte(crlf(validStreams["pipelined trio"])), Limits{}, 0, t.Fatalf)
	if len(res.Msgs) != 3 || res.Msgs[0].Target != "/1" || res.Msgs[1].Body != "abc" || res.Msgs[2].Body != "xyz" {
		t.Fatalf("%+v", res.Msgs)
	}
	res = drive([]byte(crlf(validStreams["chunked trailers"])), Limits{}, 0, t.Fatalf)
	m := res.Msgs[0]
	if m.Body != "Wikipedia in\r\n\r\nchunks." || len(m.Trailers) != 2 || m.Trailers[1] != "X-Other: d" {
		t.Fatalf("%+v", m)
	}
}

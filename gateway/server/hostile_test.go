package server

import (
	"testing"
)

// TestContentLengthNotPlainDecimal: a Content-Length that is not one plain
// decimal on one line is answered 400, the connection closed, and nothing
// reaches the backend, not even for a list of equal values, which RFC 9110
// would let a server fold (issue 18).
func TestContentLengthNotPlainDecimal(t *testing.T) {
	b, rec, _ := testBackend(t)
	ts := startServer(t, Config{}, b)
	for _, cl := range []string{
		"Content-Length: 5, 5",
		"Content-Length: 5,5",
		"Content-Length: 3, 5",
		"Content-Length: 5 5",
		"Content-Length: +5",
		"Content-Length: -5",
		"Content-Length: 5\r\nContent-Length: 5",
		"Content-Length: 5\r\nX-Other: y\r\ncontent-length: 5",
	} {
		t.Run(cl, func(t *testing.T) {
			rc := ts.dial(t)
			rc.send("POST /echo HTTP/1.1\r\nHost: x\r\n" + cl + "\r\n\r\nhello" + get("x", "/hello"))
			resp, _ := rc.read("POST")
			if resp.StatusCode != 400 || !resp.Close {
				t.Fatalf("got %d close %v, want 400 close", resp.StatusCode, resp.Close)
			}
			rc.expectEOF()
		})
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.heads) != 0 {
		t.Fatalf("the backend saw %d requests, want 0", len(rec.heads))
	}
}

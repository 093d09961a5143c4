package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// Bounds under hostile clients (issue 18), with the real gateway and real workers.

// rawRequest sends req on a fresh connection and reads one response.
func rawRequest(t *testing.T, addr, req string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", req, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nc, br, resp
}

// expectClosed checks that the gateway closes nc (EOF, no more bytes).
func expectClosed(t *testing.T, br *bufio.Reader, what string) {
	t.Helper()
	if b, err := br.ReadByte(); err == nil {
		t.Fatalf("%s: the connection is still open (read %q)", what, b)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s: the connection was not closed", what)
	}
}

// TestHostileContentLengthList: a Content-Length list of equal values, which RFC
// 9110 would let a server fold, is answered 400 and the connection closed.
func TestHostileContentLengthList(t *testing.T) {
	g := startGateway(t, "gwapp", 1)
	for _, cl := range []string{"Content-Length: 5, 5", "Content-Length: 5\r\nContent-Length: 5", "Content-Length: +5"} {
		_, br, resp := rawRequest(t, g.addr, "GET /hello HTTP/1.1\r\nHost: x\r\n"+cl+"\r\n\r\nhelloGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != 400 || !resp.Close {
			t.Errorf("%q: %d close=%v, want 400 and close", cl, resp.StatusCode, resp.Close)
			continue
		}
		expectClosed(t, br, cl)
	}
}

// TestHostileResponseBudget: clients that ask for large responses and read nothing
// make the gateway hold a response window each; past max_buffered_response_bytes it
// cuts the ones stuck longest, until the bytes held are back within the budget, and
// goes on serving everyone else.
func TestHostileResponseBudget(t *testing.T) {
	const budget = 4 << 20 // two windows (dispatch.MaxResponseHeld) do not fit
	g, a := startGatewayWithAdmin(t, "gwapp", 1, "--max-buffered-response-bytes", strconv.Itoa(budget))
	var conns []net.Conn
	for range 4 {
		nc := dialSmallWindow(t, g.addr)
		if _, err := io.WriteString(nc, "GET /flood?mb=64 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := a.scrape()
		if m["covet_slow_readers_shed_total"] >= 1 && m["covet_response_bytes_held"] <= budget {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slow reader shed, or the bytes held stayed over the budget: shed %v, held %v",
				m["covet_slow_readers_shed_total"], m["covet_response_bytes_held"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A shed client's connection ends before its 64 MiB.
	var shed int
	for _, nc := range conns {
		nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := io.Copy(io.Discard, nc)
		if err == nil && n < 64<<20 {
			shed++
		}
	}
	if shed == 0 {
		t.Error("no client's connection was closed")
	}
	if st, body, _ := g.get("/hello"); st != 200 || body != "hello" {
		t.Errorf("a fresh request after the shed: %d %q", st, body)
	}
	// Once every client is gone, no response byte is held: the count is exact.
	for _, nc := range conns {
		nc.Close()
	}
	deadline = time.Now().Add(10 * time.Second)
	for a.scrape()["covet_response_bytes_held"] != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%v response bytes still held after every client left", a.scrape()["covet_response_bytes_held"])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHostileMaxConnections: with max_connections 4 held by idle keep-alive
// connections, a new connection is served and the longest-idle one is closed.
func TestHostileMaxConnections(t *testing.T) {
	g, a := startGatewayWithAdmin(t, "gwapp", 1, "--max-connections", "4")
	// startGateway's own keep-alive connection would be the longest idle.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for a.scrape()[`covet_connections_open{protocol="http/1.1"}`] != 0 {
		if time.Now().After(deadline) {
			t.Fatal("connections still open before the test")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var brs []*bufio.Reader
	var ncs []net.Conn
	for i := range 4 {
		nc, br, resp := rawRequest(t, g.addr, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("connection %d: %d", i, resp.StatusCode)
		}
		ncs, brs = append(ncs, nc), append(brs, br)
	}
	_, _, resp := rawRequest(t, g.addr, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("new connection at max_connections: %d", resp.StatusCode)
	}
	expectClosed(t, brs[0], "the longest-idle connection")
	for i := 1; i < 4; i++ {
		fmt.Fprint(ncs[i], "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(brs[i], nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d after the shed: %v %v", i, resp, err)
		}
		io.Copy(io.Discard, resp.Body)
	}
	if v := a.scrape()[`covet_connections_shed_total{reason="idle"}`]; v != 1 {
		t.Errorf(`covet_connections_shed_total{reason="idle"} = %v, want 1`, v)
	}
}

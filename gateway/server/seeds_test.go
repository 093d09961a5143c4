package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/http1"
)

// seedCorpus is the []byte argument of every file of the http1 package's
// committed FuzzParser corpus (go test fuzz v1 encoding), by file name.
func seedCorpus(t *testing.T) map[string][]byte {
	t.Helper()
	dir := filepath.Join("..", "http1", "testdata", "fuzz", "FuzzParser")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seeds := map[string][]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
			t.Fatalf("%s: not a go test fuzz v1 file starting with a []byte", e.Name())
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		seeds[e.Name()] = []byte(s)
	}
	if len(seeds) == 0 {
		t.Fatalf("no seeds in %s", dir)
	}
	return seeds
}

// parsedStream is what the codec makes of a whole client stream: the methods of
// the request heads, the messages completed, whether it ended with a peer error,
// or with bytes of a request still incomplete.
type parsedStream struct {
	methods []string
	ends    int
	errored bool
	partial bool
}

func parseStream(data []byte) parsedStream {
	var ps parsedStream
	p := http1.NewParser(http1.Limits{})
	var req http1.Request
	for {
		ev, n, err := p.Next(data, &req)
		data = data[n:]
		if err != nil {
			var pe *http1.Error
			ps.errored = errors.As(err, &pe)
			ps.partial = err == http1.ErrNeedMore && (len(data) > 0 || len(ps.methods) > ps.ends)
			return ps
		}
		switch ev.Kind {
		case http1.EventHead:
			ps.methods = append(ps.methods, string(req.Method))
		case http1.EventEnd:
			ps.ends++
		}
	}
}

// TestFuzzSeedsServed sends every seed of the http1 parser's fuzz corpus (valid
// streams, pipelined requests, and every rule's violation) to a live server as
// one client's whole stream: the server answers in well-formed responses, at most
// one per request head or error (a request left incomplete gets its 408 from the
// short timeouts), every request answered where the codec takes the stream whole
// and without error, and closes the connection. The codec's own fuzz test shows
// that how the bytes are split does not matter to it; this shows the same of the
// engine's reads and writes around it.
func TestFuzzSeedsServed(t *testing.T) {
	b := newFakeBackend()
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"} {
		b.handle(t, m, "/{rest...}", 0, func(ctx context.Context, req *dispatch.Request, w dispatch.ResponseWriter) error {
			return respond(w, 200, "ok "+strconv.Itoa(len(req.Body)))
		})
	}
	// Short timeouts end every stream: idle keep-alive connections are closed,
	// incomplete requests answered 408.
	const short = 200 * time.Millisecond
	ts := startServer(t, Config{IdleTimeout: short, ReadHeaderTimeout: short, BodyReadTimeout: short}, b)
	seeds := seedCorpus(t)
	names := make([]string, 0, len(seeds))
	for name := range seeds {
		names = append(names, name)
	}
	sort.Strings(names)
	// Several at a time: each waits out a timeout.
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, name := range names {
		data := seeds[name]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			checkSeedServed(t, ts.addr, name, data)
		}()
	}
	wg.Wait()
}

func checkSeedServed(t *testing.T, addr, name string, data []byte) {
	ps := parseStream(data)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(data); err != nil {
		t.Errorf("%s: write: %v", name, err)
		return
	}
	out, err := io.ReadAll(nc)
	if err != nil {
		t.Errorf("%s: the server did not close the connection: %v (input %q)", name, err, data)
		return
	}
	// The final responses, in request order; 1xx interim ones skipped.
	br := bufio.NewReader(bytes.NewReader(out))
	var statuses []int
	for {
		if _, err := br.Peek(1); err == io.EOF {
			break
		}
		method := "GET"
		if i := len(statuses); i < len(ps.methods) {
			method = ps.methods[i]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if err != nil {
			t.Errorf("%s: response %d: %v\ninput %q\noutput %q", name, len(statuses)+1, err, data, out)
			return
		}
		if resp.StatusCode >= 200 {
			statuses = append(statuses, resp.StatusCode)
		}
	}
	most := len(ps.methods)
	if ps.errored || ps.partial {
		most++
	}
	whole := !ps.errored && !ps.partial
	switch {
	case len(statuses) > most || len(statuses) < ps.ends:
		t.Errorf("%s: %d responses %v to %d requests, %d whole, error %v, partial %v\ninput %q\noutput %q",
			name, len(statuses), statuses, len(ps.methods), ps.ends, ps.errored, ps.partial, data, out)
	case whole && len(statuses) != ps.ends:
		t.Errorf("%s: %d responses %v to %d whole requests\ninput %q\noutput %q", name, len(statuses), statuses, ps.ends, data, out)
	case ps.errored && len(statuses) == 0:
		t.Errorf("%s: a stream the codec rejects got no response\ninput %q", name, data)
	}
}

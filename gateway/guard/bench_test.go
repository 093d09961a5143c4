package guard

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/router"
	"github.com/covetpy/covetpy/workerproto"
)

// nullWriter is a front end's writer that drops everything.
type nullWriter struct{}

func (nullWriter) WriteHead(int, []workerproto.Header, int64) error { return nil }
func (nullWriter) WriteBody([]byte) error                           { return nil }
func (nullWriter) WriteBodyv([][]byte) error                        { return nil }

// benchChain measures the CPU the chain adds to one request on a route with
// the given options (the backend answers at once), audit log on a file.
func benchChain(b *testing.B, cfg Config, o map[string]any, headers ...string) {
	cfg.Audit.Path = filepath.Join(b.TempDir(), "audit.jsonl")
	c, be := setup(b, cfg, workerproto.Route{Method: "GET", Path: "/r", Kind: "http", Options: o})
	be.record = false
	var ps router.Params
	m, _ := c.Lookup("GET", "/r", &ps)
	req := &dispatch.Request{Head: workerproto.RequestHead{Method: "GET", Path: "/r", Route: "/r", HTTPVersion: "1.1", Scheme: "http", Client: "192.0.2.7:40000", RequestID: "r1"}}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Head.Headers = append(req.Head.Headers, workerproto.Header{Name: []byte(headers[i]), Value: []byte(headers[i+1])})
	}
	hs := req.Head.Headers
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req.Head.Auth = nil
		req.Head.Headers = hs
		if err := c.Serve(ctx, m.Value, req, nullWriter{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChainNone(b *testing.B) { benchChain(b, Config{}, opts()) }

func BenchmarkChainAuthCached(b *testing.B) {
	tok := hs256(b, map[string]any{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(), "roles": []string{"admin"}})
	benchChain(b, Config{}, opts("auth", true, "roles", []any{"admin"}), "authorization", "Bearer "+tok)
}

func BenchmarkChainRateLimit(b *testing.B) {
	benchChain(b, Config{}, opts("rate_limit", "1000000/second"))
}

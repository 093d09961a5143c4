package integration

import (
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestGatewaySteadyStateAllocs: once warm, the gateway process answers keep-alive
// requests through a real Python worker, with metrics on, without allocating.
//
// It counts with the Go runtime's own total (go_memstats_mallocs_total, scraped from
// the admin listener) over two windows of the same length, each closed by a scrape:
// one with many requests, one idle. Their difference is what the requests allocated;
// the scrape itself allocates a varying few thousand times, which the request count
// is large enough to make small, and the time-driven work cancels out. (The
// allocation-free path itself is pinned exactly, with no noise, by the server's
// TestSteadyStateAllocs*.)
func TestGatewaySteadyStateAllocs(t *testing.T) {
	g, a := startGatewayWithAdmin(t, "gwapp", 1)
	const conns, perConn = 16, 2000
	// Keep every connection open between requests (the default keeps 2 per host, and
	// a new connection per request would allocate).
	tr := &http.Transport{MaxIdleConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	get := func(n int) {
		var wg sync.WaitGroup
		for range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &http.Client{Timeout: 10 * time.Second, Transport: tr}
				for range n {
					resp, err := c.Get(g.url("/hello"))
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						t.Errorf("GET /hello: %d", resp.StatusCode)
						return
					}
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	const series = "go_memstats_mallocs_total"
	get(200) // warm the pools, the route table, the buffers
	m0 := a.scrape()[series]
	start := time.Now()
	get(perConn)
	busy := time.Since(start)
	m1 := a.scrape()[series]
	time.Sleep(busy)
	m2 := a.scrape()[series]
	perRequest := ((m1 - m0) - (m2 - m1)) / (conns * perConn)
	t.Logf("gateway mallocs: %.0f with %d requests, %.0f idle for as long (%v): %.3f per request",
		m1-m0, conns*perConn, m2-m1, busy.Round(time.Millisecond), perRequest)
	if perRequest > 0.5 {
		t.Fatalf("the gateway allocates %.2f times per request in steady state, want 0", perRequest)
	}
}

// Command killworkers kills every worker of a running gateway at once and counts
// the answers clients get meanwhile (issue 18: requests wait for the respawned
// workers instead of failing with 503). Sixteen keep-alive clients GET /hello for
// 4 s; at 1 s both workers, whose pids it learnt from /pid, get SIGKILL within a few
// milliseconds. It prints the count of each status (0: a transport error) and the
// slowest request. The gateway must serve integration/apps/gwapp.py with two
// workers; bench/probes/README.md has the command.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	base := os.Args[1]
	pids := map[int]bool{}
	for i := 0; len(pids) < 2 && i < 200; i++ {
		r, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(base + "/pid")
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		p, _ := strconv.Atoi(string(b))
		pids[p] = true
	}
	var mu sync.Mutex
	counts := map[int]int{}
	var maxLat time.Duration
	end := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 30 * time.Second}
			for time.Now().Before(end) {
				t0 := time.Now()
				r, err := c.Get(base + "/hello")
				st := 0
				if err == nil {
					io.Copy(io.Discard, r.Body)
					r.Body.Close()
					st = r.StatusCode
				}
				l := time.Since(t0)
				mu.Lock()
				counts[st]++
				if l > maxLat {
					maxLat = l
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	for p := range pids {
		syscall.Kill(p, syscall.SIGKILL)
	}
	wg.Wait()
	fmt.Printf("statuses %v, slowest request %v\n", counts, maxLat.Round(time.Millisecond))
}

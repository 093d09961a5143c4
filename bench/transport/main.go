// Command transport compares the worker transports side by side in one run: Go
// goroutines send the same MessagePack frames to a CPython echo worker over (a) the
// shared-memory rings of package shmring and (b) a Unix stream socket with
// length-prefixed frames, and report round-trip latency with one message in flight
// and throughput with many in flight.
//
//	go run ./bench/transport            (or: make bench-transport)
//
// The Python interpreter is $COVET_PYTHON, else .venv/bin/python.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/covetpy/covetpy/integration/harness"
	"github.com/vmihailenco/msgpack/v5"
)

// echoer is one transport to a Python echo worker. send may be called from many
// goroutines; every echoed frame is handed to the deliver func given at start.
type echoer interface {
	send(id uint64, payload []byte) error
	close() error
	pid() int // the worker process, for its CPU time
}

// pending routes echoes to the goroutine waiting for them: id's low bits are the slot.
type pending struct {
	slots []chan uint64
}

func newPending(n int) *pending {
	p := &pending{slots: make([]chan uint64, n)}
	for i := range p.slots {
		p.slots[i] = make(chan uint64, 1)
	}
	return p
}

func (p *pending) deliver(id uint64) {
	p.slots[id&0xffff] <- id
}

type result struct {
	transport string
	inflight  int
	msgs      int
	elapsed   time.Duration
	lat       []time.Duration
	goCPU     time.Duration // CPU time of this (the gateway-side) process during the run
	pyCPU     time.Duration // CPU time of the worker process during the run
}

func (r result) pct(q float64) time.Duration {
	return r.lat[int(q*float64(len(r.lat)-1))]
}

// drive runs msgs round trips split over inflight goroutines (closed loop).
func drive(name string, e echoer, p *pending, inflight, msgs int, payload []byte) (result, error) {
	per := msgs / inflight
	lats := make([][]time.Duration, inflight)
	go0, py0 := selfCPU(), procCPU(e.pid())
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < inflight; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			l := make([]time.Duration, 0, per)
			for i := 0; i < per; i++ {
				id := uint64(i)<<32 | uint64(g)
				t0 := time.Now()
				if err := e.send(id, payload); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				got := <-p.slots[g]
				if got != id {
					firstErr.CompareAndSwap(nil, fmt.Errorf("%s: goroutine %d got echo %#x, want %#x", name, g, got, id))
					return
				}
				l = append(l, time.Since(t0))
			}
			lats[g] = l
		}(g)
	}
	wg.Wait()
	r := result{transport: name, inflight: inflight, msgs: per * inflight, elapsed: time.Since(start),
		goCPU: selfCPU() - go0, pyCPU: procCPU(e.pid()) - py0}
	if err, _ := firstErr.Load().(error); err != nil {
		return r, err
	}
	for _, l := range lats {
		r.lat = append(r.lat, l...)
	}
	slices.Sort(r.lat)
	return r, nil
}

// samplePayload is a typical request head (PROTOCOL.md 3.1), the frame a worker decodes
// and answers for every request.
func samplePayload() []byte {
	head := []any{
		"GET", "/users/42", "verbose=1",
		[]any{"host", []byte("127.0.0.1:8000"), "user-agent", []byte("wrk/4.2"), "accept", []byte("*/*"),
			"accept-encoding", []byte("gzip"), "x-request-id", []byte("7f1c2d3e4a5b6c7d")},
		"/users/{id:int}", []any{"id", "42"}, "1.1", "http", "127.0.0.1:51234", "7f1c2d3e4a5b6c7d", 0, 30000,
	}
	b, err := msgpack.Marshal(head)
	if err != nil {
		panic(err)
	}
	return b
}

func pythonPath() string {
	p, err := harness.Python()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return p
}

func main() {
	n1 := flag.Int("n1", 20000, "round trips with 1 message in flight")
	nN := flag.Int("n", 256000, "round trips with -inflight messages in flight")
	inflight := flag.Int("inflight", 64, "messages in flight for the throughput run")
	rounds := flag.Int("rounds", 3, "interleaved rounds; the median round is reported")
	procs := flag.Int("procs", runtime.NumCPU(), "GOMAXPROCS of the gateway side")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the gateway side to this file")
	only := flag.String("only", "", "run only this transport (shm or unix)")
	flag.DurationVar(&harness.Spin, "spin", harness.Spin, "how long the shm response reader spin-polls before sleeping")
	flag.IntVar(&harness.SpinMaxOutstanding, "spin-max", harness.SpinMaxOutstanding, "the shm response reader spins only with at most this many messages unanswered")
	flag.Parse()
	if *only != "" {
		transports = slices.DeleteFunc(transports, func(t transportDef) bool { return t.name != *only })
		if len(transports) == 0 {
			fmt.Fprintf(os.Stderr, "transport: -only %q: want shm or unix\n", *only)
			os.Exit(2)
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "transport:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "transport:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	runtime.GOMAXPROCS(*procs)

	payload := samplePayload()
	fmt.Printf("transport benchmark: payload %d bytes of msgpack, python %s, GOMAXPROCS %d, %d rounds\n",
		len(payload), pythonPath(), runtime.GOMAXPROCS(0), *rounds)

	type key struct {
		t  string
		in int
	}
	all := map[key][]result{}
	for round := 0; round < *rounds; round++ {
		for _, t := range transports {
			for _, cfg := range []struct{ inflight, n int }{{1, *n1}, {*inflight, *nN}} {
				p := newPending(cfg.inflight)
				e, err := t.start(p)
				if err != nil {
					fmt.Fprintf(os.Stderr, "%s: start: %v\n", t.name, err)
					os.Exit(1)
				}
				// Warm up the worker (imports, caches) before measuring.
				if _, err := drive(t.name, e, p, cfg.inflight, cfg.inflight*200, payload); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				r, err := drive(t.name, e, p, cfg.inflight, cfg.n, payload)
				if cerr := e.close(); err == nil {
					err = cerr
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				all[key{t.name, cfg.inflight}] = append(all[key{t.name, cfg.inflight}], r)
			}
		}
	}

	fmt.Printf("\n%-10s %9s %12s %10s %10s %10s %10s %10s   %s\n", "transport", "in-flight", "msgs/s", "p50", "p99", "p99.9",
		"go cpu/msg", "py cpu/msg", "msgs/s min..max")
	for _, cfgIn := range []int{1, *inflight} {
		for _, t := range transports {
			rs := all[key{t.name, cfgIn}]
			slices.SortFunc(rs, func(a, b result) int { return int(a.rate() - b.rate()) })
			med := rs[len(rs)/2]
			fmt.Printf("%-10s %9d %12.0f %10s %10s %10s %10s %10s   %.0f..%.0f\n", t.name, cfgIn, med.rate(),
				med.pct(0.50).Round(100*time.Nanosecond), med.pct(0.99).Round(100*time.Nanosecond),
				med.pct(0.999).Round(100*time.Nanosecond), perMsg(med.goCPU, med.msgs), perMsg(med.pyCPU, med.msgs),
				rs[0].rate(), rs[len(rs)-1].rate())
		}
	}
}

func (r result) rate() float64 { return float64(r.msgs) / r.elapsed.Seconds() }

type transportDef struct {
	name  string
	start func(p *pending) (echoer, error)
}

var transports = []transportDef{
	{"shm", startShm},
	{"unix", startUDS},
}

func perMsg(d time.Duration, n int) string {
	return (d / time.Duration(n)).Round(10 * time.Nanosecond).String()
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is another process's user+system CPU time, from /proc (clock ticks of 10ms).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command: state is field 3; utime 14, stime 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * 10 * time.Millisecond
}

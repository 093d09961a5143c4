// Command tlsload is bench/tls.py's helper for what h2load cannot do here: it makes the
// benchmark's certificate, checks one answer over HTTP/1.1, HTTP/2 or HTTP/3, loads a
// server over HTTP/3 (quic-go), and measures full TLS handshakes per second. For
// bench/ws.py it also drives WebSockets (ws.go): an echo check, a closed-loop echo
// load and a hold of many idle connections. A module of its own, like bench/gohttp, so
// the repository's `go ./...` never builds it.
//
//	tlsload cert -dir DIR                              # DIR/cert.pem, DIR/key.pem
//	tlsload get -proto h1|h2|h3 -ca CERT URL           # one request
//	tlsload h3 -c 8 -m 10 -d 10s -w 2s -ca CERT URL    # HTTP/3 load
//	tlsload handshakes -c 8 -d 10s -w 2s -ca CERT URL  # a new TLS connection per request
//	tlsload wscheck ws://HOST:PORT/PATH                # WebSocket echoes of many sizes, checked
//	tlsload ws -c 64 -size 64 [-binary] -d 10s -w 2s ws://HOST:PORT/PATH   # echo load
//	tlsload wsidle -n 10000 ws://HOST:PORT/PATH        # hold idle WebSockets until stdin ends
//
// Every command but cert prints one line, "TLSLOAD " and a JSON object, on stdout; the
// load commands keep the same connections from the warm-up (-w) into the measured time
// (-d), whose start and end they mark on stdout.
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tlsload cert|get|h3|handshakes|wscheck|ws|wsidle [flags]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "cert":
		err = cert(args)
	case "get":
		err = get(args)
	case "h3":
		err = h3load(args)
	case "handshakes":
		err = handshakes(args)
	case "wscheck":
		err = wscheck(args)
	case "ws":
		err = wsload(args)
	case "wsidle":
		err = wsidle(args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlsload:", err)
		os.Exit(1)
	}
}

func emit(v any) {
	b, _ := json.Marshal(v)
	fmt.Printf("TLSLOAD %s\n", b)
}

// cert writes a self-signed ECDSA P-256 certificate for 127.0.0.1 and localhost, valid
// for a day, and its key in PKCS#8 (Granian takes no other form).
func cert(args []string) error {
	fs := flag.NewFlagSet("cert", flag.ExitOnError)
	dir := fs.String("dir", ".", "where to write cert.pem and key.pem")
	fs.Parse(args)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "covet-bench"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600)
}

// clientTLS trusts only the benchmark's certificate and keeps no session cache, so
// every connection is a full handshake.
func clientTLS(caFile string, protos ...string) (*tls.Config, error) {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	return &tls.Config{RootCAs: pool, NextProtos: protos}, nil
}

func client(proto, caFile string) (*http.Client, func(), error) {
	switch proto {
	case "h1", "h2":
		alpn := map[string]string{"h1": "http/1.1", "h2": "h2"}[proto]
		cfg, err := clientTLS(caFile, alpn)
		if err != nil {
			return nil, nil, err
		}
		tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: proto == "h2"}
		if proto == "h1" {
			tr.Protocols = new(http.Protocols)
			tr.Protocols.SetHTTP1(true)
		} else {
			tr.Protocols = new(http.Protocols)
			tr.Protocols.SetHTTP2(true)
		}
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr.CloseIdleConnections, nil
	case "h3":
		cfg, err := clientTLS(caFile, http3.NextProtoH3)
		if err != nil {
			return nil, nil, err
		}
		tr := &http3.Transport{TLSClientConfig: cfg, QUICConfig: &quic.Config{MaxIdleTimeout: 30 * time.Second}}
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}, func() { tr.Close() }, nil
	}
	return nil, nil, fmt.Errorf("proto %q: want h1, h2 or h3", proto)
}

func get(args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	proto := fs.String("proto", "h1", "h1, h2 or h3")
	ca := fs.String("ca", "cert.pem", "the certificate to trust")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("get: one URL")
	}
	c, done, err := client(*proto, *ca)
	if err != nil {
		return err
	}
	defer done()
	resp, err := c.Get(fs.Arg(0))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	emit(map[string]any{"status": resp.StatusCode, "proto": resp.Proto, "content_type": resp.Header.Get("Content-Type"),
		"alt_svc": resp.Header.Get("Alt-Svc"), "body": string(body)})
	return nil
}

// stats counts completed requests and keeps their latencies while measuring.
type stats struct {
	measuring atomic.Bool
	ok, bad   atomic.Int64
	mu        sync.Mutex
	lat       []time.Duration
	firstErr  atomic.Value
}

func (s *stats) record(d time.Duration, err error) {
	if !s.measuring.Load() {
		return
	}
	if err != nil {
		s.bad.Add(1)
		s.firstErr.CompareAndSwap(nil, err.Error())
		return
	}
	s.ok.Add(1)
	s.mu.Lock()
	s.lat = append(s.lat, d)
	s.mu.Unlock()
}

// run keeps load on for warm, then measures for dur; returns the result object. The
// lines "TLSLOAD-MARK start" and "TLSLOAD-MARK stop" on stdout bracket the measured
// time, for a caller that samples the server's CPU time then.
func (s *stats) run(warm, dur time.Duration, stop func()) map[string]any {
	time.Sleep(warm)
	fmt.Println("TLSLOAD-MARK start")
	s.measuring.Store(true)
	t0 := time.Now()
	time.Sleep(dur)
	s.measuring.Store(false)
	elapsed := time.Since(t0)
	fmt.Println("TLSLOAD-MARK stop")
	stop()
	s.mu.Lock()
	lat := slices.Clone(s.lat)
	s.mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds())
	}
	out := map[string]any{"requests": s.ok.Load(), "errors": s.bad.Load(), "seconds": elapsed.Seconds(),
		"rps": float64(s.ok.Load()) / elapsed.Seconds(), "p50_us": pct(0.50), "p99_us": pct(0.99)}
	if e := s.firstErr.Load(); e != nil {
		out["first_error"] = e
	}
	return out
}

func checkBody(resp *http.Response) error {
	_, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return err
}

// checkAnswer reads the whole answer and checks it: status 200, the protocol, and
// where given the media type and the exact body.
func checkAnswer(resp *http.Response, major int, ctype, body string) error {
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return err
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("status %d", resp.StatusCode)
	case resp.ProtoMajor != major:
		return fmt.Errorf("answered over %s", resp.Proto)
	case ctype != "" && !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype):
		return fmt.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
	case body != "" && string(got) != body:
		return fmt.Errorf("body %.80q", got)
	}
	return nil
}

// h3load opens c QUIC connections (one http3.Transport, so one UDP socket, each) and
// keeps m requests in flight on each; every answer is checked (status 200, HTTP/3, and
// -type and -body where given), a wrong one counting as an error.
func h3load(args []string) error {
	fs := flag.NewFlagSet("h3", flag.ExitOnError)
	conns := fs.Int("c", 64, "QUIC connections")
	streams := fs.Int("m", 10, "requests in flight per connection")
	dur := fs.Duration("d", 10*time.Second, "measured time")
	warm := fs.Duration("w", 2*time.Second, "unmeasured load first")
	ca := fs.String("ca", "cert.pem", "the certificate to trust")
	wantType := fs.String("type", "", "media type every answer must have; empty = any")
	wantBody := fs.String("body", "", "the body every answer must have; empty = any")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("h3: one URL")
	}
	target := fs.Arg(0)
	ctx, cancel := context.WithCancel(context.Background())
	var st stats
	var wg sync.WaitGroup
	var closers []func()
	for range *conns {
		c, done, err := client("h3", *ca)
		if err != nil {
			cancel()
			return err
		}
		c.Timeout = 5 * time.Second // a request stuck past this counts as an error
		closers = append(closers, done)
		for range *streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
					t0 := time.Now()
					resp, err := c.Do(req)
					if err == nil {
						err = checkAnswer(resp, 3, *wantType, *wantBody)
					}
					if ctx.Err() == nil {
						st.record(time.Since(t0), err)
					}
					if err != nil && ctx.Err() == nil {
						time.Sleep(10 * time.Millisecond) // a refused connection must not spin
					}
				}
			}()
		}
	}
	res := st.run(*warm, *dur, cancel)
	wg.Wait()
	for _, done := range closers {
		done()
	}
	res["connections"], res["streams"] = *conns, *streams
	emit(res)
	return nil
}

// handshakes runs c loops of: TCP connect, full TLS handshake (no session cache, so no
// resumption), GET with Connection: close, read the whole response, close with RST
// (SO_LINGER 0, so no TIME_WAIT piles up on the client's ports).
func handshakes(args []string) error {
	fs := flag.NewFlagSet("handshakes", flag.ExitOnError)
	conns := fs.Int("c", 8, "concurrent connection loops")
	dur := fs.Duration("d", 10*time.Second, "measured time")
	warm := fs.Duration("w", 2*time.Second, "unmeasured load first")
	ca := fs.String("ca", "cert.pem", "the certificate to trust")
	hybrid := fs.Bool("mlkem", false, "offer X25519MLKEM768 before X25519 (Go's client default); "+
		"without it the key exchange is X25519 alone, as OpenSSL 3.0 clients (h2load, curl) do")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("handshakes: one URL")
	}
	u, err := url.Parse(fs.Arg(0))
	if err != nil {
		return err
	}
	cfg, err := clientTLS(*ca, "http/1.1")
	if err != nil {
		return err
	}
	cfg.ServerName = u.Hostname()
	cfg.CurvePreferences = []tls.CurveID{tls.X25519}
	if *hybrid {
		cfg.CurvePreferences = []tls.CurveID{tls.X25519MLKEM768, tls.X25519}
	}
	reqLine := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", u.RequestURI(), u.Host)
	var st stats
	var groups sync.Map // tls.CurveID -> count, what the handshakes agreed on
	stopped := atomic.Bool{}
	var wg sync.WaitGroup
	one := func() error {
		raw, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		if err != nil {
			return err
		}
		raw.(*net.TCPConn).SetLinger(0)
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		c := tls.Client(raw, cfg)
		if err := c.Handshake(); err != nil {
			return err
		}
		cs := c.ConnectionState()
		if cs.DidResume {
			return errors.New("session resumed")
		}
		v, _ := groups.LoadOrStore(cs.CurveID.String(), new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		if _, err := io.WriteString(c, reqLine); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		return checkBody(resp)
	}
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopped.Load() {
				t0 := time.Now()
				err := one()
				st.record(time.Since(t0), err)
				if err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	res := st.run(*warm, *dur, func() { stopped.Store(true) })
	wg.Wait()
	agreed := map[string]int64{}
	groups.Range(func(k, v any) bool { agreed[k.(string)] = v.(*atomic.Int64).Load(); return true })
	res["connections"], res["groups"] = *conns, agreed
	emit(res)
	return nil
}

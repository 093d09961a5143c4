package http1

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

var genCorpus = flag.Bool("gen-corpus", false, "rewrite testdata/fuzz seed corpora from the test tables")

var tightLimits = Limits{MaxRequestLine: 64, MaxHeaderBytes: 128, MaxHeaderFields: 4,
	MaxBodyBytes: 64, MaxChunkExtBytes: 16, MaxTrailerBytes: 32}

// seedInputs are the rule-table and valid-stream inputs, the encoder side of
// the fuzz seeds.
func seedInputs() [][]byte {
	var out [][]byte
	names := make([]string, 0, len(validStreams))
	for name := range validStreams {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		out = append(out, []byte(crlf(validStreams[name])))
	}
	for _, tc := range ruleCases {
		in := tc.in
		if !tc.raw {
			in = crlf(in)
		}
		if len(in) < 1024 {
			out = append(out, []byte(in))
		}
	}
	return out
}

func FuzzParser(f *testing.F) {
	for i, in := range seedInputs() {
		f.Add(in, uint8(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		lim := Limits{}
		if mode&0x80 != 0 {
			lim = tightLimits
		}
		one := drive(data, lim, 0, t.Fatalf)
		if one.Consumed+one.Pending > len(data) || one.Consumed < 0 {
			t.Fatalf("consumed %d + pending %d of %d", one.Consumed, one.Pending, len(data))
		}
		// The outcome, errors included, does not depend on how the bytes
		// were split.
		step := int(mode&0x7f) + 1
		if got := drive(data, lim, step, t.Fatalf); got.String() != one.String() {
			t.Fatalf("step %d:\n%v\none-shot:\n%v", step, got, one)
		}
		// A driver that breaks the contract (drops unconsumed bytes instead
		// of re-presenting them) gets garbage, but never a panic or an
		// out-of-range n.
		p := NewParser(lim)
		var req Request
		for rest := data; len(rest) > 0; {
			k := min(len(rest), step)
			if _, n, _ := p.Next(rest[:k], &req); n < 0 || n > k {
				t.Fatalf("n=%d of %d", n, k)
			}
			rest = rest[k:]
		}
	})
}

// FuzzDifferential compares framing with net/http's request reader on the
// inputs both accept: the same number of requests with the same methods,
// targets and body bytes.
//
// Intentional differences, which make one side reject and so are not
// compared: this parser is stricter (bare LF line ends, obs-fold, bare CR,
// CL with TE, Transfer-Encoding in HTTP/1.0, non-ASCII or '#' in targets,
// target form by method, Host syntax, unknown expectations, chunk-size
// lines without CRLF, a repeated Content-Length line, which net/http folds
// when the values are equal; both refuse a Content-Length list) and more lenient
// in two places, both RFC-sanctioned: it ignores empty lines before a
// request line (RFC 9112 §2.2) and empty Transfer-Encoding list elements
// (RFC 9110 §5.6.1); net/http rejects both. After a message that closes
// the connection this parser stops, so net/http is given only the bytes
// this parser consumed.
func FuzzDifferential(f *testing.F) {
	for _, in := range seedInputs() {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ours := drive(data, Limits{}, 0, t.Fatalf)
		if len(ours.Errs) != 0 || (!ours.Closed && ours.Final != StateIdle) || len(ours.Msgs) == 0 {
			return
		}
		if len(ours.Msgs) > 0 && ours.Msgs[len(ours.Msgs)-1].Method == "CONNECT" {
			return // after CONNECT the connection is a tunnel; net/http keeps parsing
		}
		theirs, ok := netHTTPParse(data[:ours.Consumed])
		if !ok {
			return
		}
		if len(theirs) != len(ours.Msgs) {
			t.Fatalf("net/http parsed %d requests, we parsed %d\n%q", len(theirs), len(ours.Msgs), data)
		}
		for i, m := range ours.Msgs {
			th := theirs[i]
			if th.Method != m.Method || th.Target != m.Target || th.Body != m.Body {
				t.Fatalf("request %d differs:\nnet/http %+v\nours     %+v\n%q", i, th, m, data)
			}
		}
	})
}

type netReq struct{ Method, Target, Body string }

func netHTTPParse(data []byte) ([]netReq, bool) {
	br := bufio.NewReader(bytes.NewReader(data))
	var out []netReq
	for {
		if _, err := br.Peek(1); err == io.EOF {
			return out, true
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return nil, false
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, false
		}
		out = append(out, netReq{req.Method, req.RequestURI, string(body)})
	}
}

// TestGenCorpus writes the committed seed corpora (go test -run GenCorpus -gen-corpus).
func TestGenCorpus(t *testing.T) {
	if !*genCorpus {
		t.Skip("run with -gen-corpus to rewrite testdata/fuzz")
	}
	for i, in := range seedInputs() {
		write := func(fuzzer, body string) {
			dir := filepath.Join("testdata", "fuzz", fuzzer)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			name := filepath.Join(dir, fmt.Sprintf("seed-%03d", i))
			if err := os.WriteFile(name, []byte("go test fuzz v1\n"+body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("FuzzParser", fmt.Sprintf("[]byte(%q)\nbyte(%q)\n", in, byte(i)|byte(i%2)<<7))
		write("FuzzDifferential", fmt.Sprintf("[]byte(%q)\n", in))
	}
}

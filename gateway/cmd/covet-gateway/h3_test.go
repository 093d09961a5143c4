package main

import (
	"bytes"
	stdlog "log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
)

// TestListenHTTP3 opens the UDP twin of a TCP listener on port 0 and
// advertises its port; quic-go's standard-log output lands in the
// gateway's log.
func TestListenHTTP3(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var buf bytes.Buffer
	pc, altSvc, err := listenHTTP3(ln, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if ua := pc.LocalAddr().(*net.UDPAddr); ua.Port != port || !ua.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("UDP %v for TCP %v", ua, ln.Addr())
	}
	if want := `h3=":` + strconv.Itoa(port) + `"; ma=86400`; altSvc != want {
		t.Errorf("Alt-Svc %q, want %q", altSvc, want)
	}
	stdlog.Printf("failed to sufficiently increase receive buffer size")
	if got := buf.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, `msg="failed to sufficiently increase receive buffer size"`) {
		t.Errorf("the standard log's line became %q", got)
	}

	// The UDP port is taken: an error naming http3.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ln2.Addr().(*net.TCPAddr).Port})
	if err != nil {
		t.Skipf("cannot take the UDP port for the test: %v", err)
	}
	defer busy.Close()
	if _, _, err := listenHTTP3(ln2, slog.New(slog.NewTextHandler(&buf, nil))); err == nil || !strings.HasPrefix(err.Error(), "http3: ") {
		t.Errorf("UDP port in use: %v", err)
	}
}

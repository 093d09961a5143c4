package main

import (
	"bytes"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"sync"
)

// listenHTTP3 opens the UDP socket HTTP/3 is served on: the TCP listener's
// host and port (so a listen port of 0 gets the same number for both), and
// the Alt-Svc value that advertises it.
func listenHTTP3(ln net.Listener, log *slog.Logger) (net.PacketConn, string, error) {
	ta := ln.Addr().(*net.TCPAddr)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: ta.IP, Port: ta.Port, Zone: ta.Zone})
	if err != nil {
		return nil, "", fmt.Errorf("http3: %w", err)
	}
	routeStdLog(log)
	return pc, fmt.Sprintf(`h3=":%d"; ma=86400`, ta.Port), nil
}

var stdLogOnce sync.Once

// routeStdLog sends what goes to the standard library's log package into
// log at warn level: quic-go writes there (a UDP buffer it could not
// enlarge, see docs/operations.md), and nothing else of the gateway does.
func routeStdLog(log *slog.Logger) {
	stdLogOnce.Do(func() {
		stdlog.SetFlags(0)
		stdlog.SetOutput(stdLogWriter{log})
	})
}

type stdLogWriter struct{ log *slog.Logger }

func (w stdLogWriter) Write(p []byte) (int, error) {
	w.log.Warn(string(bytes.TrimSpace(p)))
	return len(p), nil
}

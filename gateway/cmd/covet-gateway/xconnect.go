package main

import (
	"os"
	"strings"
	"syscall"
)

// enableExtendedConnect makes Go's HTTP/2 server accept RFC 8441's extended
// CONNECT, which WebSocket over HTTP/2 needs (gateway/server/ws_h2.go). net/http
// turns it on only when the process starts with GODEBUG=http2xconnect=1 in its
// environment: it reads the variable once, while initialising, and a //go:debug
// directive cannot set it (the setting is not in the runtime's table). So
// the gateway, started without it, executes itself again, same pid, arguments
// and file descriptors, with it added. A GODEBUG that already names
// http2xconnect (=0 included) is left as it is; if the exec fails the gateway
// goes on without extended CONNECT (HTTP/2 clients then use WebSocket over
// HTTP/1.1).
func enableExtendedConnect() {
	godebug := os.Getenv("GODEBUG")
	if strings.Contains(godebug, "http2xconnect=") {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	if godebug != "" {
		godebug += ","
	}
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	env = append(env, "GODEBUG="+godebug+"http2xconnect=1")
	_ = syscall.Exec(exe, os.Args, env) // returns only if it failed
}

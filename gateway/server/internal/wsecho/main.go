// Command wsecho is a test-only WebSocket echo server: the gateway's real
// HTTP/1.1 front end (server.Server, with its WebSocket session code) in
// front of an in-process backend whose one route, a KindWebSocket route at
// /echo, writes back every message it reads. It exists to run conformance
// suites (make autobahn) against the front end without Python workers;
// the dispatcher's side (rings, credit, the worker) is not in the loop.
//
//	wsecho -listen 127.0.0.1:9001 -max-message 33554432
//
// It prints "listening on ADDR" once the listener is bound and serves until
// SIGINT or SIGTERM, then shuts down (open sessions get close 1001).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/gateway/server"
	"github.com/covetpy/covetpy/router"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "TCP address to serve on")
	maxMsg := flag.Int64("max-message", 32<<20, "ws_max_message_bytes (Autobahn's 9.x cases send up to 16 MiB)")
	compression := flag.Bool("compression", true, "negotiate permessage-deflate")
	engine := flag.String("engine", "", "socket engine: netpoll, uring or auto (empty: netpoll)")
	flag.Parse()
	if err := run(*listen, *maxMsg, *compression, *engine); err != nil {
		fmt.Fprintln(os.Stderr, "wsecho:", err)
		os.Exit(1)
	}
}

func run(listen string, maxMsg int64, compression bool, engine string) error {
	r := router.New[*dispatch.Route]()
	rt := &dispatch.Route{App: "echo", Pattern: "/echo", Kind: dispatch.KindWebSocket}
	if err := r.Add(router.Route[*dispatch.Route]{Method: "GET", Pattern: "/echo", Value: rt}); err != nil {
		return err
	}
	srv := &server.Server{
		Config:  server.Config{WSMaxMessageBytes: maxMsg, WSCompression: compression, Engine: engine},
		Backend: echo{r},
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Println("listening on", ln.Addr())
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// echo is the backend: routes from r, no plain HTTP handlers, and an echo
// for every WebSocket session.
type echo struct {
	r *router.Router[*dispatch.Route]
}

func (e echo) Lookup(method, path string, ps *router.Params) (router.Match[*dispatch.Route], router.Status) {
	return e.r.Lookup(method, path, ps)
}

func (echo) Serve(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, w dispatch.ResponseWriter) error {
	return &dispatch.StatusError{Status: 404, Reason: "not found"}
}

func (echo) ServeWebSocket(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, peer dispatch.WebSocketPeer) error {
	if err := peer.Accept("", nil); err != nil {
		return err
	}
	for {
		text, p, err := peer.ReadMessage()
		if err != nil {
			var ce *dispatch.CloseError
			if !errors.As(err, &ce) {
				return err
			}
			return peer.Close(ce.Code, ce.Reason)
		}
		if err := peer.WriteMessage(text, p); err != nil {
			// The client is gone, or closed first: wait for its end.
			continue
		}
	}
}

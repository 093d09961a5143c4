package grpcgw

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/workerproto"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionalphapb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
)

// The methods Services answers.
const (
	healthCheck       = healthpb.Health_Check_FullMethodName
	healthWatch       = healthpb.Health_Watch_FullMethodName
	healthList        = healthpb.Health_List_FullMethodName
	reflectionV1      = reflectionpb.ServerReflection_ServerReflectionInfo_FullMethodName
	reflectionV1alpha = reflectionalphapb.ServerReflection_ServerReflectionInfo_FullMethodName
)

// ownServices are the services Services answers, as list_services and the
// health service name them.
var ownServices = []string{
	healthpb.Health_ServiceDesc.ServiceName,
	reflectionpb.ServerReflection_ServiceDesc.ServiceName,
	reflectionalphapb.ServerReflection_ServiceDesc.ServiceName,
}

// Services is the gateway's own gRPC services, a [Local]: the standard health
// service (grpc.health.v1.Health: Check, Watch, List), answered from the
// Catalog's services, and server reflection (grpc.reflection.v1 and v1alpha),
// answered from the descriptors the workers sent plus the gateway's own files.
//
// Serve answers each call with a gRPC status and returns nil; it returns an
// error only when the answer could not be completed: the writer failed, the
// request body broke off (returned as is), or the call's context was canceled
// (dispatch.ErrCanceled, nothing more written). A context that passed its
// deadline is answered DEADLINE_EXCEEDED. Request messages are bounded at
// 4 MiB (RESOURCE_EXHAUSTED) and may be gzip-compressed (grpc-encoding);
// responses are never compressed.
type Services struct {
	cat    Catalog
	log    *slog.Logger
	routes map[string]*dispatch.Route // one per method, shared by every call

	// own are the gateway's own descriptor files, the base of every
	// descriptor set. Immutable.
	own []ownFile

	mu  sync.Mutex
	set *descriptorSet // built from the Catalog's descriptors; replaced when they change
}

// NewServices returns the gateway's own gRPC services over cat. log takes the
// warnings about worker descriptors reflection cannot use; nil discards them.
func NewServices(cat Catalog, log *slog.Logger) *Services {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Services{cat: cat, log: log, routes: make(map[string]*dispatch.Route), own: ownFiles()}
	for _, m := range []string{healthCheck, healthWatch, healthList, reflectionV1, reflectionV1alpha} {
		s.routes[m] = &dispatch.Route{Kind: dispatch.KindGRPC, Pattern: m}
	}
	return s
}

// WithoutReflection stops s answering server reflection (covet-gateway's
// grpc_reflection off): its methods are then routed as any other, to a
// worker that has them, else UNIMPLEMENTED. Call it before serving.
func (s *Services) WithoutReflection() *Services {
	delete(s.routes, reflectionV1)
	delete(s.routes, reflectionV1alpha)
	return s
}

// Route returns the route of a method Services answers, or nil.
func (s *Services) Route(path string) *dispatch.Route {
	return s.routes[path]
}

// errNoTrailers: Serve was given a writer that cannot send trailers.
var errNoTrailers = errors.New("grpcgw: Services.Serve needs a dispatch.TrailerWriter")

// Serve answers one call to a route Route returned.
func (s *Services) Serve(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, w dispatch.ResponseWriter) error {
	tw, ok := w.(dispatch.TrailerWriter)
	if !ok {
		return errNoTrailers
	}
	c := &call{ctx: ctx, w: w, tw: tw}
	c.in.encoding = string(headerValue(req.Head.Headers, "grpc-encoding"))
	if req.BodyStream != nil {
		body := req.BodyStream
		c.in.r = body
		// Stop the body once: when the call ends, or at once when its
		// context does (which ends a Read blocked on the client), and
		// return only after Stop has.
		stopped := make(chan struct{})
		stop := context.AfterFunc(ctx, func() { body.Stop(); close(stopped) })
		defer func() {
			if stop() {
				body.Stop()
			} else {
				<-stopped
			}
		}()
	} else {
		c.in.r = bytes.NewReader(req.Body)
	}
	var err error
	switch rt.Pattern {
	case healthCheck:
		err = s.check(c)
	case healthWatch:
		err = s.watch(c)
	case healthList:
		err = s.list(c)
	case reflectionV1, reflectionV1alpha:
		err = s.reflect(c)
	default:
		err = statusErr(Unimplemented, "method %s not served by the gateway", rt.Pattern)
	}
	return c.end(err)
}

// call is one call's state, owned by the goroutine running Serve.
type call struct {
	ctx      context.Context
	w        dispatch.ResponseWriter
	tw       dispatch.TrailerWriter
	in       msgReader
	headSent bool
	out      []byte // the last response message; reused
}

// headFields are the fields of every response head.
var headFields = []workerproto.Header{
	{Name: []byte("content-type"), Value: []byte("application/grpc")},
	{Name: []byte("grpc-accept-encoding"), Value: []byte("gzip")},
}

// recvOnly reads the request of a unary or server-streaming method: exactly
// one message.
func (c *call) recvOnly(m proto.Message) error {
	if err := c.recv(m); err != nil {
		if err == io.EOF {
			return statusErr(Internal, "no request message")
		}
		return err
	}
	if _, err := c.in.next(); err != io.EOF {
		if err == nil {
			return statusErr(Internal, "more than one request message for a method that takes one")
		}
		return err
	}
	return nil
}

// recv reads the next request message into m; io.EOF after the last.
func (c *call) recv(m proto.Message) error {
	b, err := c.in.next()
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return statusErr(Internal, "error unmarshalling request: %v", err)
	}
	return nil
}

// send writes one response message (the head first, for the first), and
// flushes it: a stream's client may wait for it before it sends more.
func (c *call) send(m proto.Message) error {
	if !c.headSent {
		c.headSent = true
		if err := c.w.WriteHead(200, headFields, -1); err != nil {
			return err
		}
	}
	var err error
	if c.out, err = appendMessage(c.out[:0], m); err != nil {
		return statusErr(Internal, "error marshalling response: %v", err)
	}
	if err := c.w.WriteBody(c.out); err != nil {
		return err
	}
	if f, ok := c.w.(dispatch.Flusher); ok {
		return f.Flush()
	}
	return nil
}

// end answers the status the method ended with (see Services).
func (c *call) end(err error) error {
	code, msg := OK, ""
	var ce *callError
	switch {
	case err == nil:
	case errors.As(err, &ce):
		code, msg = ce.code, ce.msg
	case c.ctx.Err() == context.DeadlineExceeded:
		code, msg = DeadlineExceeded, "deadline exceeded"
	case c.ctx.Err() != nil:
		return dispatch.ErrCanceled
	default:
		return err
	}
	if !c.headSent {
		// Trailers-only.
		fields := make([]workerproto.Header, 0, len(headFields)+2)
		return c.w.WriteHead(200, StatusFields(append(fields, headFields...), code, msg), 0)
	}
	return c.tw.WriteTrailers(StatusFields(nil, code, msg))
}

// headerValue is the value of the first field called name (lower-case), or nil.
func headerValue(hs []workerproto.Header, name string) []byte {
	for _, h := range hs {
		if string(h.Name) == name {
			return h.Value
		}
	}
	return nil
}

// Package grpcgw is the gateway's gRPC layer (PROTOCOL.md 2.10): a Backend in
// front of the middleware chain that answers gRPC calls to KindGRPC routes with
// gRPC statuses instead of HTTP ones, translates gRPC-Web, and serves the
// gateway's own services (health, reflection) from a [Catalog].
package grpcgw

import (
	"context"

	"github.com/covetpy/covetpy/gateway/dispatch"
)

// Catalog is what the gateway's own services read: *dispatch.Dispatcher
// implements it.
type Catalog interface {
	// GRPCServices lists the services of the live route table's KindGRPC
	// routes, sorted by name.
	GRPCServices() []dispatch.GRPCService
	// GRPCDescriptors returns the serialized FileDescriptorProtos the live
	// workers sent in their hellos (PROTOCOL.md 1.3), each file once.
	GRPCDescriptors() [][]byte
}

// Local answers the gRPC methods the gateway serves itself (health,
// reflection): the Layer asks it for a route when the live route table has
// none for a path.
type Local interface {
	// Route returns the route of a method Local answers, or nil; the same
	// *Route for a path each time (the Layer knows Local's calls by it).
	Route(path string) *dispatch.Route
	// Serve answers one call to a route Route returned. req is a native gRPC
	// call (gRPC-Web already translated by the Layer); w is a TrailerWriter.
	Serve(ctx context.Context, rt *dispatch.Route, req *dispatch.Request, w dispatch.ResponseWriter) error
}

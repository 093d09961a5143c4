package dispatch

import (
	"fmt"
	"slices"
	"strings"
)

// grpcService checks a KindGRPC route of a manifest (PROTOCOL.md 1.3): method
// POST, and a literal pattern /{service}/{method} with no parameters. It
// returns the service's name.
func grpcService(method, pattern string) (string, error) {
	if method != "POST" {
		return "", fmt.Errorf("a grpc route's method is POST, not %s", method)
	}
	service, name, ok := strings.Cut(strings.TrimPrefix(pattern, "/"), "/")
	if !ok || service == "" || name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("a grpc route's path is /{package.Service}/{Method}")
	}
	if strings.ContainsAny(pattern, "{}") {
		return "", fmt.Errorf("a grpc route's path is literal: no parameters")
	}
	return service, nil
}

// GRPCServices lists the gRPC services of the live route table (grpcgw.Catalog),
// sorted by name, each once: Serving when an app whose routes name it has a
// live worker.
func (d *Dispatcher) GRPCServices() []GRPCService {
	d.mu.Lock()
	apps := make([]*app, 0, len(d.apps))
	for _, a := range d.apps {
		apps = append(apps, a)
	}
	d.mu.Unlock()
	serving := map[string]bool{}
	for _, a := range apps {
		a.mu.Lock()
		names, live := a.grpcServices, len(a.sessions) > 0
		a.mu.Unlock()
		for _, n := range names {
			serving[n] = serving[n] || live
		}
	}
	out := make([]GRPCService, 0, len(serving))
	for n, ok := range serving {
		out = append(out, GRPCService{Name: n, Serving: ok})
	}
	slices.SortFunc(out, func(a, b GRPCService) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// GRPCDescriptors returns the serialized FileDescriptorProtos the workers of
// the apps in the route table sent in their hellos (grpcgw.Catalog), each
// once (equal bytes once; apps that sent different versions of one file give
// both), in the order of the apps' names and then as sent. The slices are
// shared: callers must not modify them.
func (d *Dispatcher) GRPCDescriptors() [][]byte {
	d.mu.Lock()
	names := make([]string, 0, len(d.apps))
	for n := range d.apps {
		names = append(names, n)
	}
	slices.Sort(names)
	seen := map[string]bool{}
	var out [][]byte
	for _, n := range names {
		a := d.apps[n]
		a.mu.Lock()
		for _, f := range a.descriptors {
			if !seen[string(f)] {
				seen[string(f)] = true
				out = append(out, f)
			}
		}
		a.mu.Unlock()
	}
	d.mu.Unlock()
	return out
}

package grpcgw

import (
	"slices"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// watchInterval is how often Watch reads the Catalog for a change.
const watchInterval = 250 * time.Millisecond

// The health service's view of the Catalog:
//   - a service of the live route table is SERVING while its app has a live
//     worker, NOT_SERVING otherwise;
//   - the gateway's own services (health, reflection) are always SERVING;
//   - "" (the server as a whole) is SERVING when some gRPC service of the route
//     table is, or when the table has none (the gateway is up and answers its
//     own services), NOT_SERVING when it has some and none is serving;
//   - any other name is unknown: Check answers NOT_FOUND, Watch
//     SERVICE_UNKNOWN, as grpc-go's health server does.
//
// svcs is a snapshot of the Catalog's services.
func health(svcs []dispatch.GRPCService, service string) (status healthpb.HealthCheckResponse_ServingStatus, known bool) {
	const serving, notServing = healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_NOT_SERVING
	if slices.Contains(ownServices, service) {
		return serving, true
	}
	if service == "" {
		if len(svcs) == 0 || slices.ContainsFunc(svcs, func(v dispatch.GRPCService) bool { return v.Serving }) {
			return serving, true
		}
		return notServing, true
	}
	for _, v := range svcs {
		if v.Name == service {
			if v.Serving {
				return serving, true
			}
			return notServing, true
		}
	}
	return healthpb.HealthCheckResponse_SERVICE_UNKNOWN, false
}

func (s *Services) check(c *call) error {
	var req healthpb.HealthCheckRequest
	if err := c.recvOnly(&req); err != nil {
		return err
	}
	status, known := health(s.cat.GRPCServices(), req.Service)
	if !known {
		return statusErr(NotFound, "unknown service")
	}
	return c.send(&healthpb.HealthCheckResponse{Status: status})
}

// watch sends the service's status at once, then each change, until the
// call's context ends.
func (s *Services) watch(c *call) error {
	var req healthpb.HealthCheckRequest
	if err := c.recvOnly(&req); err != nil {
		return err
	}
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	last := healthpb.HealthCheckResponse_ServingStatus(-1)
	for {
		if status, _ := health(s.cat.GRPCServices(), req.Service); status != last {
			last = status
			if err := c.send(&healthpb.HealthCheckResponse{Status: status}); err != nil {
				return err
			}
		}
		select {
		case <-c.ctx.Done():
			return c.ctx.Err()
		case <-tick.C:
		}
	}
}

// list answers every service health knows by name: "", the gateway's own
// and the route table's.
func (s *Services) list(c *call) error {
	var req healthpb.HealthListRequest
	if err := c.recvOnly(&req); err != nil {
		return err
	}
	svcs := s.cat.GRPCServices()
	statuses := make(map[string]*healthpb.HealthCheckResponse, len(svcs)+len(ownServices)+1)
	for _, name := range slices.Concat([]string{""}, ownServices) {
		status, _ := health(svcs, name)
		statuses[name] = &healthpb.HealthCheckResponse{Status: status}
	}
	for _, v := range svcs {
		status, _ := health(svcs, v.Name)
		statuses[v.Name] = &healthpb.HealthCheckResponse{Status: status}
	}
	return c.send(&healthpb.HealthListResponse{Statuses: statuses})
}

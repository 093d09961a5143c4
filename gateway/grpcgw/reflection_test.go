//lint:file-ignore SA1019 grpc.reflection.v1alpha is deprecated, and the gateway still answers its clients (grpcurl falls back to it)

package grpcgw

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/interop/grpc_testing"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionalphapb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// The reflection answers use v1's message types for v1alpha too: the two
// files' messages must have the same fields, numbers, kinds and oneofs.
func TestReflectionV1AlphaWireCompatible(t *testing.T) {
	v1 := reflectionpb.File_grpc_reflection_v1_reflection_proto
	alpha := reflectionalphapb.File_grpc_reflection_v1alpha_reflection_proto
	if v1.Messages().Len() != alpha.Messages().Len() {
		t.Fatalf("%d messages in v1, %d in v1alpha", v1.Messages().Len(), alpha.Messages().Len())
	}
	for i := range v1.Messages().Len() {
		m := v1.Messages().Get(i)
		a := alpha.Messages().ByName(m.Name())
		if a == nil {
			t.Fatalf("v1alpha has no message %s", m.Name())
		}
		if m.Fields().Len() != a.Fields().Len() {
			t.Fatalf("%s: %d fields in v1, %d in v1alpha", m.Name(), m.Fields().Len(), a.Fields().Len())
		}
		for j := range m.Fields().Len() {
			f := m.Fields().Get(j)
			g := a.Fields().ByNumber(f.Number())
			if g == nil || g.Name() != f.Name() || g.Kind() != f.Kind() || g.Cardinality() != f.Cardinality() ||
				(f.Message() != nil) != (g.Message() != nil) ||
				(f.Message() != nil && f.Message().Name() != g.Message().Name()) ||
				(f.ContainingOneof() != nil) != (g.ContainingOneof() != nil) ||
				(f.ContainingOneof() != nil && f.ContainingOneof().Name() != g.ContainingOneof().Name()) {
				t.Fatalf("%s.%s differs between v1 and v1alpha", m.Name(), f.Name())
			}
		}
	}
}

// encodedWithImports serializes fd and every file it imports, fd first.
func encodedWithImports(t *testing.T, fd protoreflect.FileDescriptor) (paths []string, files [][]byte) {
	t.Helper()
	queue := []protoreflect.FileDescriptor{fd}
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		if slices.Contains(paths, f.Path()) {
			continue
		}
		b, err := proto.Marshal(protodesc.ToFileDescriptorProto(f))
		if err != nil {
			t.Fatal(err)
		}
		paths, files = append(paths, f.Path()), append(files, b)
		for i := range f.Imports().Len() {
			queue = append(queue, f.Imports().Get(i).FileDescriptor)
		}
	}
	return paths, files
}

// extFile declares extensions of its own message, one top-level and one
// nested, of a type from grpc/testing/empty.proto.
func extFile(t *testing.T) []byte {
	t.Helper()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("covet/ext.proto"),
		Package:    proto.String("covet.test"),
		Syntax:     proto.String("proto2"),
		Dependency: []string{"grpc/testing/empty.proto"},
		MessageType: []*descriptorpb.DescriptorProto{
			{
				Name:           proto.String("Base"),
				ExtensionRange: []*descriptorpb.DescriptorProto_ExtensionRange{{Start: proto.Int32(100), End: proto.Int32(200)}},
			},
			{
				Name: proto.String("Holder"),
				Extension: []*descriptorpb.FieldDescriptorProto{{
					Name: proto.String("nested"), Number: proto.Int32(150), Label: opt,
					Type: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), TypeName: proto.String(".grpc.testing.Empty"),
					Extendee: proto.String(".covet.test.Base"),
				}},
			},
		},
		Extension: []*descriptorpb.FieldDescriptorProto{{
			Name: proto.String("extra"), Number: proto.Int32(101), Label: opt,
			Type: descriptorpb.FieldDescriptorProto_TYPE_INT32.Enum(), Extendee: proto.String(".covet.test.Base"),
		}},
	}
	b, err := proto.Marshal(fdp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// interopCatalog serves grpc.testing.TestService, with the descriptors of
// grpc-go's interop test.proto and its imports (given after a file that
// imports one of them, so the set is built in import order, not given
// order), and extFile.
func interopCatalog(t *testing.T) (*fakeCatalog, map[string][]byte) {
	paths, files := encodedWithImports(t, grpc_testing.File_grpc_testing_test_proto)
	byPath := make(map[string][]byte)
	for i, p := range paths {
		byPath[p] = files[i]
	}
	byPath["covet/ext.proto"] = extFile(t)
	return &fakeCatalog{
		svcs:  []dispatch.GRPCService{{Name: "grpc.testing.TestService", Serving: true}},
		descs: append([][]byte{byPath["covet/ext.proto"]}, files...),
	}, byPath
}

// reflectV1 runs one v1 stream: each request is sent after the previous
// answer came.
func reflectV1(t *testing.T, conn *grpc.ClientConn, reqs ...*reflectionpb.ServerReflectionRequest) []*reflectionpb.ServerReflectionResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*reflectionpb.ServerReflectionResponse
	for _, req := range reqs {
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resp)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != io.EOF {
		t.Fatalf("after the last request: %v, %v; want the stream's end", resp, err)
	}
	return out
}

func symbolReq(name string) *reflectionpb.ServerReflectionRequest {
	return &reflectionpb.ServerReflectionRequest{Host: "h", MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: name}}
}

func fileReq(name string) *reflectionpb.ServerReflectionRequest {
	return &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileByFilename{FileByFilename: name}}
}

var listReq = &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}

// filePaths names the files of a file_descriptor_response, in order.
func filePaths(t *testing.T, resp *reflectionpb.ServerReflectionResponse) []string {
	t.Helper()
	fr := resp.GetFileDescriptorResponse()
	if fr == nil {
		t.Fatalf("no files in %v", resp)
	}
	var paths []string
	for _, b := range fr.FileDescriptorProto {
		var fdp descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(b, &fdp); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, fdp.GetName())
	}
	return paths
}

func wantNotFound(t *testing.T, resp *reflectionpb.ServerReflectionResponse) {
	t.Helper()
	if e := resp.GetErrorResponse(); e == nil || e.ErrorCode != int32(codes.NotFound) || e.ErrorMessage == "" {
		t.Fatalf("answer %v, want a NOT_FOUND error_response", resp)
	}
}

func TestReflectionV1(t *testing.T) {
	cat, byPath := interopCatalog(t)
	_, conn := h2cServer(t, NewServices(cat, nil))
	extNums := func(name string) *reflectionpb.ServerReflectionRequest {
		return &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_AllExtensionNumbersOfType{AllExtensionNumbersOfType: name}}
	}
	extReq := func(typ string, n int32) *reflectionpb.ServerReflectionRequest {
		return &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingExtension{
			FileContainingExtension: &reflectionpb.ExtensionRequest{ContainingType: typ, ExtensionNumber: n}}}
	}
	resps := reflectV1(t, conn,
		listReq,
		symbolReq("grpc.testing.TestService"),
		symbolReq("grpc.testing.SimpleRequest"),               // in a file sent already: answered again, alone
		symbolReq("grpc.testing.TestService.UnaryCall"),       // a method
		symbolReq("grpc.testing.SimpleRequest.fill_username"), // a field
		symbolReq("grpc.testing.COMPRESSABLE"),                // an enum value, named beside its enum
		symbolReq("grpc.testing.Nope"),
		fileReq("grpc/health/v1/health.proto"),
		fileReq("nope.proto"),
		extNums("covet.test.Base"),
		extNums("grpc.testing.Empty"),
		extNums("covet.test.Nope"),
		extReq("covet.test.Base", 150),
		extReq("covet.test.Base", 102),
	)
	var names []string
	for _, svc := range resps[0].GetListServicesResponse().GetService() {
		names = append(names, svc.Name)
	}
	if want := []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "grpc.testing.TestService"}; !slices.Equal(names, want) {
		t.Fatalf("list_services = %v, want %v", names, want)
	}

	// The first file answer holds the file and its imports; the worker's
	// bytes go out as the worker sent them.
	got := filePaths(t, resps[1])
	if got[0] != "grpc/testing/test.proto" || !slices.Contains(got, "grpc/testing/messages.proto") || !slices.Contains(got, "grpc/testing/empty.proto") {
		t.Fatalf("file_containing_symbol TestService = %v", got)
	}
	for i, b := range resps[1].GetFileDescriptorResponse().FileDescriptorProto {
		if !bytes.Equal(b, byPath[got[i]]) {
			t.Fatalf("%s is not the worker's bytes", got[i])
		}
	}
	if resps[1].ValidHost != "h" || resps[1].OriginalRequest.GetFileContainingSymbol() != "grpc.testing.TestService" {
		t.Fatalf("valid_host %q, original_request %v", resps[1].ValidHost, resps[1].OriginalRequest)
	}
	for i, want := range [][]string{
		2: {"grpc/testing/messages.proto"},
		3: {"grpc/testing/test.proto"},
		4: {"grpc/testing/messages.proto"},
		5: {"grpc/testing/messages.proto"},
		7: {"grpc/health/v1/health.proto"},
	} {
		if want != nil && !slices.Equal(filePaths(t, resps[i]), want) {
			t.Fatalf("answer %d names %v, want %v", i, filePaths(t, resps[i]), want)
		}
	}
	wantNotFound(t, resps[6])
	wantNotFound(t, resps[8])
	if n := resps[9].GetAllExtensionNumbersResponse(); n.GetBaseTypeName() != "covet.test.Base" || !slices.Equal(n.GetExtensionNumber(), []int32{101, 150}) {
		t.Fatalf("all_extension_numbers_of_type Base = %v", resps[9])
	}
	if n := resps[10].GetAllExtensionNumbersResponse(); n == nil || len(n.ExtensionNumber) != 0 {
		t.Fatalf("all_extension_numbers_of_type Empty = %v", resps[10])
	}
	wantNotFound(t, resps[11])
	// empty.proto went out with test.proto already.
	if got := filePaths(t, resps[12]); !slices.Equal(got, []string{"covet/ext.proto"}) {
		t.Fatalf("file_containing_extension = %v", got)
	}
	wantNotFound(t, resps[13])
}

// Each stream sends a file once: a new stream starts afresh, and what one
// stream gets resolves on its own.
func TestReflectionFilesResolve(t *testing.T) {
	cat, _ := interopCatalog(t)
	_, conn := h2cServer(t, NewServices(cat, nil))
	resp := reflectV1(t, conn, symbolReq("covet.test.Holder.nested"))[0]
	var set descriptorpb.FileDescriptorSet
	for _, b := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
		fdp := new(descriptorpb.FileDescriptorProto)
		if err := proto.Unmarshal(b, fdp); err != nil {
			t.Fatal(err)
		}
		set.File = append(set.File, fdp)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		t.Fatalf("the answer's files do not resolve: %v", err)
	}
	if _, err := files.FindDescriptorByName("covet.test.extra"); err != nil {
		t.Fatal(err)
	}
}

func TestReflectionV1Alpha(t *testing.T) {
	cat, _ := interopCatalog(t)
	_, conn := h2cServer(t, NewServices(cat, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := reflectionalphapb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []*reflectionalphapb.ServerReflectionRequest{
		{MessageRequest: &reflectionalphapb.ServerReflectionRequest_ListServices{}},
		{MessageRequest: &reflectionalphapb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "grpc.reflection.v1alpha.ServerReflection"}},
		{MessageRequest: &reflectionalphapb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "grpc.testing.Nope"}},
	} {
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var resps []*reflectionalphapb.ServerReflectionResponse
	for {
		resp, err := stream.Recv()
		if err != nil {
			break
		}
		resps = append(resps, resp)
	}
	if len(resps) != 3 {
		t.Fatalf("%d answers to 3 requests", len(resps))
	}
	if svcs := resps[0].GetListServicesResponse().GetService(); len(svcs) != 4 || svcs[3].Name != "grpc.testing.TestService" {
		t.Fatalf("list_services = %v", svcs)
	}
	files := resps[1].GetFileDescriptorResponse().GetFileDescriptorProto()
	var fdp descriptorpb.FileDescriptorProto
	if len(files) != 1 || proto.Unmarshal(files[0], &fdp) != nil || fdp.GetName() != "grpc/reflection/v1alpha/reflection.proto" {
		t.Fatalf("file_containing_symbol = %v", resps[1])
	}
	if e := resps[2].GetErrorResponse(); e.GetErrorCode() != int32(codes.NotFound) {
		t.Fatalf("unknown symbol answered %v", resps[2])
	}
}

// A request naming no request ends the stream INVALID_ARGUMENT.
func TestReflectionEmptyRequest(t *testing.T) {
	s := NewServices(new(fakeCatalog), nil)
	body := append(marshal(t, listReq), marshal(t, &reflectionpb.ServerReflectionRequest{Host: "h"})...)
	rec := serve(t, context.Background(), s, reflectionV1, nil, body)
	if code, _ := rec.statusOf(t); code != InvalidArgument {
		t.Fatalf("status %v", code)
	}
	if msgs := messages[reflectionpb.ServerReflectionResponse](t, rec.body); len(msgs) != 1 {
		t.Fatalf("%d answers before the failure", len(msgs))
	}
}

// A worker file that does not resolve is left out, with one warning per
// descriptor set; the others are still answered, and the set follows the
// Catalog.
func TestReflectionSkipsBrokenFiles(t *testing.T) {
	broken, _ := proto.Marshal(&descriptorpb.FileDescriptorProto{
		Name: proto.String("broken.proto"), Package: proto.String("broken"), Dependency: []string{"missing.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("M")}},
	})
	clash, _ := proto.Marshal(&descriptorpb.FileDescriptorProto{
		Name: proto.String("clash.proto"), Package: proto.String("grpc.testing"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("Empty")}},
	})
	// A worker's copy of a gateway file is left out silently.
	health, _ := proto.Marshal(&descriptorpb.FileDescriptorProto{Name: proto.String("grpc/health/v1/health.proto")})
	cat, _ := interopCatalog(t)
	good := cat.descs
	cat.descs = nil
	var logs bytes.Buffer
	_, conn := h2cServer(t, NewServices(cat, slog.New(slog.NewTextHandler(&logs, nil))))

	wantNotFound(t, reflectV1(t, conn, symbolReq("grpc.testing.TestService"))[0])
	cat.setDescriptors(slices.Concat([][]byte{broken, []byte("\xff not a descriptor"), health}, good, [][]byte{clash}))
	for range 2 {
		resps := reflectV1(t, conn, symbolReq("grpc.testing.TestService"), symbolReq("broken.M"), symbolReq("grpc.health.v1.HealthCheckRequest"))
		if got := filePaths(t, resps[0]); got[0] != "grpc/testing/test.proto" {
			t.Fatalf("file_containing_symbol TestService = %v", got)
		}
		wantNotFound(t, resps[1])
		if got := filePaths(t, resps[2]); !slices.Equal(got, []string{"grpc/health/v1/health.proto"}) {
			t.Fatalf("health.proto: %v", got)
		}
	}
	text := logs.String()
	for _, want := range []string{"missing=[missing.proto]", "does not parse", "file=clash.proto"} {
		if strings.Count(text, want) != 1 {
			t.Fatalf("%q logged %d times in:\n%s", want, strings.Count(text, want), text)
		}
	}
	if strings.Count(text, "\n") != 3 {
		t.Fatalf("logged:\n%s", text)
	}
}

// grpcurl lists and describes the services through reflection, and calls
// the health service: COVET_GRPCURL names the grpcurl binary (v1.9.4).
func TestGrpcurl(t *testing.T) {
	bin := os.Getenv("COVET_GRPCURL")
	if bin == "" {
		t.Skip("COVET_GRPCURL does not name a grpcurl binary (make test-go passes bin/grpcurl: make bin/grpcurl)")
	}
	cat, _ := interopCatalog(t)
	addr, _ := h2cServer(t, NewServices(cat, nil))
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, append([]string{"-plaintext"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("grpcurl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if got, want := strings.Fields(run(addr, "list")), []string{
		"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
		"grpc.reflection.v1alpha.ServerReflection", "grpc.testing.TestService",
	}; !slices.Equal(got, want) {
		t.Fatalf("grpcurl list = %v, want %v", got, want)
	}
	if out := run(addr, "describe", "grpc.testing.TestService"); !strings.Contains(out, "rpc UnaryCall ( .grpc.testing.SimpleRequest ) returns ( .grpc.testing.SimpleResponse );") {
		t.Fatalf("grpcurl describe:\n%s", out)
	}
	if out := run(addr, "describe", "grpc.testing.SimpleRequest"); !strings.Contains(out, "message SimpleRequest {") {
		t.Fatalf("grpcurl describe:\n%s", out)
	}
	if out := run("-d", `{"service":"grpc.testing.TestService"}`, addr, "grpc.health.v1.Health/Check"); !strings.Contains(out, `"status": "SERVING"`) {
		t.Fatalf("grpcurl Check:\n%s", out)
	}
}

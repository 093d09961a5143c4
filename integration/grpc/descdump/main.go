// Command descdump writes the descriptors of grpc-go's interop TestService
// (grpc.testing, the package google.golang.org/grpc/interop/grpc_testing
// registers) as a serialized google.protobuf.FileDescriptorSet: test.proto and
// every file it imports, transitively, each once, imports before the files that
// import them.
//
// The gRPC integration tests and the gRPC benchmark load that set at run time to
// build their Python TestService servicer (integration/grpc/interop_service.py)
// and to give ghz the service's schema, so the repository holds no copy of the
// interop .proto files: the definition is the one the grpc-go module the interop
// client is built from registers.
//
//	go run ./integration/grpc/descdump OUT.pb
package main

import (
	"fmt"
	"os"

	_ "google.golang.org/grpc/interop/grpc_testing" // registers grpc/testing/test.proto and its imports
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// testProto is the path the interop service's file is registered under.
const testProto = "grpc/testing/test.proto"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: descdump OUT.pb")
		os.Exit(2)
	}
	set, err := descriptorSet(testProto)
	if err == nil {
		var b []byte
		if b, err = proto.Marshal(set); err == nil {
			err = os.WriteFile(os.Args[1], b, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "descdump:", err)
		os.Exit(1)
	}
}

// descriptorSet is the file registered as path with its transitive imports, in
// dependency order (a file after everything it imports).
func descriptorSet(path string) (*descriptorpb.FileDescriptorSet, error) {
	root, err := protoregistry.GlobalFiles.FindFileByPath(path)
	if err != nil {
		return nil, fmt.Errorf("%s is not registered: %w", path, err)
	}
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := range imports.Len() {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	add(root)
	return set, nil
}

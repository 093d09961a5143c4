package grpcgw

import (
	"bytes"
	"fmt"
	"io"
	"slices"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionalphapb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Server reflection answers both grpc.reflection.v1 and v1alpha with the v1
// message types: v1 is v1alpha under a new package name, with the same fields
// and numbers, so the two encode alike on the wire (reflection_test.go checks
// it).

// ownFile is one of the gateway's own descriptor files.
type ownFile struct {
	fd      protoreflect.FileDescriptor
	encoded []byte // its serialized FileDescriptorProto
}

func ownFiles() []ownFile {
	fds := []protoreflect.FileDescriptor{
		healthpb.File_grpc_health_v1_health_proto,
		reflectionpb.File_grpc_reflection_v1_reflection_proto,
		reflectionalphapb.File_grpc_reflection_v1alpha_reflection_proto,
	}
	own := make([]ownFile, len(fds))
	for i, fd := range fds {
		b, err := proto.Marshal(protodesc.ToFileDescriptorProto(fd))
		if err != nil {
			panic("grpcgw: a generated file descriptor does not marshal: " + err.Error())
		}
		own[i] = ownFile{fd, b}
	}
	return own
}

// descriptorSet is what reflection answers from: the gateway's own files and
// the workers' that resolve. Immutable once built.
type descriptorSet struct {
	raw     [][]byte // the Catalog's descriptors it was built from
	files   *protoregistry.Files
	encoded map[string][]byte // by path: the serialized FileDescriptorProto
	// exts lists the extensions declared in the files by the message they
	// extend.
	exts map[protoreflect.FullName][]protoreflect.ExtensionDescriptor
}

// descriptors returns the descriptor set of the Catalog's current
// descriptors, building it when they have changed since the last call.
func (s *Services) descriptors() *descriptorSet {
	raw := s.cat.GRPCDescriptors()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil || !slices.EqualFunc(s.set.raw, raw, bytes.Equal) {
		s.set = s.buildSet(raw)
	}
	return s.set
}

// buildSet builds the descriptor set of raw. A worker file that does not parse,
// imports a file the set lacks, or clashes with a file already in it is left
// out, with a warning: the others are still answered. A file with the path of
// one of the gateway's own is left out silently (the worker's copy of a
// standard file).
func (s *Services) buildSet(raw [][]byte) *descriptorSet {
	set := &descriptorSet{
		raw:     raw,
		files:   new(protoregistry.Files),
		encoded: make(map[string][]byte, len(s.own)+len(raw)),
		exts:    make(map[protoreflect.FullName][]protoreflect.ExtensionDescriptor),
	}
	for _, f := range s.own {
		if err := set.files.RegisterFile(f.fd); err != nil {
			panic("grpcgw: the gateway's own file descriptors clash: " + err.Error())
		}
		set.add(f.fd, f.encoded)
	}
	// Register the worker files in import order: each round adds those whose
	// imports are all in, until a round adds none.
	type pending struct {
		fdp     *descriptorpb.FileDescriptorProto
		encoded []byte
	}
	var todo []pending
	for _, b := range raw {
		fdp := new(descriptorpb.FileDescriptorProto)
		if err := proto.Unmarshal(b, fdp); err != nil {
			s.log.Warn("grpcgw: reflection skips a worker's file descriptor that does not parse", "err", err)
			continue
		}
		if _, err := set.files.FindFileByPath(fdp.GetName()); err == nil {
			if !slices.ContainsFunc(s.own, func(f ownFile) bool { return f.fd.Path() == fdp.GetName() }) {
				s.log.Warn("grpcgw: reflection skips a second worker file of the same name", "file", fdp.GetName())
			}
			continue
		}
		todo = append(todo, pending{fdp, b})
	}
	for added := true; added; {
		added = false
		rest := todo[:0]
		for _, p := range todo {
			if len(missingImports(set.files, p.fdp)) > 0 {
				rest = append(rest, p)
				continue
			}
			fd, err := protodesc.NewFile(p.fdp, set.files)
			if err == nil {
				err = set.files.RegisterFile(fd)
			}
			if err != nil {
				s.log.Warn("grpcgw: reflection skips a worker's invalid file descriptor", "file", p.fdp.GetName(), "err", err)
				continue
			}
			set.add(fd, p.encoded)
			added = true
		}
		todo = rest
	}
	for _, p := range todo {
		s.log.Warn("grpcgw: reflection skips a worker's file descriptor whose imports are missing",
			"file", p.fdp.GetName(), "missing", missingImports(set.files, p.fdp))
	}
	return set
}

// missingImports lists the files fdp imports that files lacks.
func missingImports(files *protoregistry.Files, fdp *descriptorpb.FileDescriptorProto) []string {
	var missing []string
	for _, dep := range fdp.GetDependency() {
		if _, err := files.FindFileByPath(dep); err != nil {
			missing = append(missing, dep)
		}
	}
	return missing
}

// add indexes a file registered in set.files.
func (set *descriptorSet) add(fd protoreflect.FileDescriptor, encoded []byte) {
	set.encoded[fd.Path()] = encoded
	set.addExtensions(fd.Extensions())
	set.addMessageExtensions(fd.Messages())
}

func (set *descriptorSet) addMessageExtensions(msgs protoreflect.MessageDescriptors) {
	for i := range msgs.Len() {
		set.addExtensions(msgs.Get(i).Extensions())
		set.addMessageExtensions(msgs.Get(i).Messages())
	}
}

func (set *descriptorSet) addExtensions(xds protoreflect.ExtensionDescriptors) {
	for i := range xds.Len() {
		xd := xds.Get(i)
		name := xd.ContainingMessage().FullName()
		set.exts[name] = append(set.exts[name], xd)
	}
}

// withImports returns fd's serialized file followed by those of the files it
// imports, directly or not, that sent does not hold, and adds them all to
// sent: a stream sends each file once. fd itself is answered even when sent
// holds it (it was asked for), as grpc-go's reflection does.
func (set *descriptorSet) withImports(fd protoreflect.FileDescriptor, sent map[string]bool) [][]byte {
	out := [][]byte{set.encoded[fd.Path()]}
	sent[fd.Path()] = true
	queue := []protoreflect.FileDescriptor{fd}
	for len(queue) > 0 {
		imports := queue[0].Imports()
		queue = queue[1:]
		for i := range imports.Len() {
			imp := imports.Get(i).FileDescriptor
			if !sent[imp.Path()] {
				sent[imp.Path()] = true
				out = append(out, set.encoded[imp.Path()])
				queue = append(queue, imp)
			}
		}
	}
	return out
}

// reflect serves a ServerReflectionInfo stream: one response per request.
func (s *Services) reflect(c *call) error {
	sent := make(map[string]bool) // the files this stream has sent
	for {
		var req reflectionpb.ServerReflectionRequest
		if err := c.recv(&req); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		resp := &reflectionpb.ServerReflectionResponse{ValidHost: req.Host, OriginalRequest: &req}
		switch r := req.MessageRequest.(type) {
		case *reflectionpb.ServerReflectionRequest_ListServices:
			resp.MessageResponse = s.listServices()
		case *reflectionpb.ServerReflectionRequest_FileByFilename:
			set := s.descriptors()
			if fd, err := set.files.FindFileByPath(r.FileByFilename); err == nil {
				resp.MessageResponse = filesResponse(set.withImports(fd, sent))
			} else {
				resp.MessageResponse = notFound("file " + r.FileByFilename + " not found")
			}
		case *reflectionpb.ServerReflectionRequest_FileContainingSymbol:
			set := s.descriptors()
			if d, err := set.files.FindDescriptorByName(protoreflect.FullName(r.FileContainingSymbol)); err == nil {
				resp.MessageResponse = filesResponse(set.withImports(d.ParentFile(), sent))
			} else {
				resp.MessageResponse = notFound("symbol " + r.FileContainingSymbol + " not found")
			}
		case *reflectionpb.ServerReflectionRequest_FileContainingExtension:
			set, ext := s.descriptors(), r.FileContainingExtension
			if xd := set.extension(ext.GetContainingType(), ext.GetExtensionNumber()); xd != nil {
				resp.MessageResponse = filesResponse(set.withImports(xd.ParentFile(), sent))
			} else {
				resp.MessageResponse = notFound(fmt.Sprintf("extension %d of %s not found", ext.GetExtensionNumber(), ext.GetContainingType()))
			}
		case *reflectionpb.ServerReflectionRequest_AllExtensionNumbersOfType:
			if nums, ok := s.descriptors().extensionNumbers(r.AllExtensionNumbersOfType); ok {
				resp.MessageResponse = &reflectionpb.ServerReflectionResponse_AllExtensionNumbersResponse{
					AllExtensionNumbersResponse: &reflectionpb.ExtensionNumberResponse{BaseTypeName: r.AllExtensionNumbersOfType, ExtensionNumber: nums},
				}
			} else {
				resp.MessageResponse = notFound("message type " + r.AllExtensionNumbersOfType + " not found")
			}
		default:
			return statusErr(InvalidArgument, "reflection request names no request")
		}
		if err := c.send(resp); err != nil {
			return err
		}
	}
}

// listServices names the Catalog's services and the gateway's own.
func (s *Services) listServices() *reflectionpb.ServerReflectionResponse_ListServicesResponse {
	names := slices.Clone(ownServices)
	for _, v := range s.cat.GRPCServices() {
		names = append(names, v.Name)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	svcs := make([]*reflectionpb.ServiceResponse, len(names))
	for i, name := range names {
		svcs[i] = &reflectionpb.ServiceResponse{Name: name}
	}
	return &reflectionpb.ServerReflectionResponse_ListServicesResponse{
		ListServicesResponse: &reflectionpb.ListServiceResponse{Service: svcs},
	}
}

// extension returns the extension number of the message type named
// containing, or nil.
func (set *descriptorSet) extension(containing string, number int32) protoreflect.ExtensionDescriptor {
	for _, xd := range set.exts[protoreflect.FullName(containing)] {
		if xd.Number() == protoreflect.FieldNumber(number) {
			return xd
		}
	}
	return nil
}

// extensionNumbers returns the numbers of the extensions of the message type
// called name, sorted; false when no message type has that name.
func (set *descriptorSet) extensionNumbers(name string) ([]int32, bool) {
	if d, err := set.files.FindDescriptorByName(protoreflect.FullName(name)); err != nil || !isMessage(d) {
		return nil, false
	}
	xds := set.exts[protoreflect.FullName(name)]
	nums := make([]int32, len(xds))
	for i, xd := range xds {
		nums[i] = int32(xd.Number())
	}
	slices.Sort(nums)
	return nums, true
}

func isMessage(d protoreflect.Descriptor) bool {
	_, ok := d.(protoreflect.MessageDescriptor)
	return ok
}

func filesResponse(files [][]byte) *reflectionpb.ServerReflectionResponse_FileDescriptorResponse {
	return &reflectionpb.ServerReflectionResponse_FileDescriptorResponse{
		FileDescriptorResponse: &reflectionpb.FileDescriptorResponse{FileDescriptorProto: files},
	}
}

func notFound(msg string) *reflectionpb.ServerReflectionResponse_ErrorResponse {
	return &reflectionpb.ServerReflectionResponse_ErrorResponse{
		ErrorResponse: &reflectionpb.ErrorResponse{ErrorCode: int32(NotFound), ErrorMessage: msg},
	}
}

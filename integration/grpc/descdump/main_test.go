package main

import (
	"testing"

	"google.golang.org/protobuf/reflect/protodesc"
)

func TestDescriptorSetIsCompleteAndOrdered(t *testing.T) {
	set, err := descriptorSet(testProto)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range set.File {
		if seen[f.GetName()] {
			t.Errorf("%s appears twice", f.GetName())
		}
		for _, dep := range f.GetDependency() {
			if !seen[dep] {
				t.Errorf("%s comes before its import %s", f.GetName(), dep)
			}
		}
		seen[f.GetName()] = true
	}
	if last := set.File[len(set.File)-1].GetName(); last != testProto {
		t.Errorf("the last file is %s, want %s", last, testProto)
	}
	// The set stands alone: it resolves with no other registry, and declares the
	// service the interop client calls.
	files, err := protodesc.NewFiles(set)
	if err != nil {
		t.Fatalf("the set does not resolve on its own: %v", err)
	}
	if _, err := files.FindDescriptorByName("grpc.testing.TestService"); err != nil {
		t.Error(err)
	}
}

func TestDescriptorSetUnknownFile(t *testing.T) {
	if _, err := descriptorSet("no/such.proto"); err == nil {
		t.Error("descriptorSet of an unregistered file succeeded")
	}
}

package dispatch

import (
	"errors"
	"testing"

	"github.com/covetpy/covetpy/workerproto"
)

func respFilePayload(t *testing.T, status int, path string) []byte {
	t.Helper()
	f := workerproto.RespFile{Status: status, Path: path,
		Headers: []workerproto.Header{{Name: []byte("content-disposition"), Value: []byte("attachment")}}}
	b, err := f.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRespFileReader: a RESP_FILE completes the call with a copy of the answer
// (the ring's bytes may be overwritten at once); one after the head, or one not
// flagged BEGIN|END, ends the session; one for a stale id is dropped.
func TestRespFileReader(t *testing.T) {
	s, c, id := hintSession()
	defer putCall(c)
	p := respFilePayload(t, 200, "/srv/a.txt")
	if err := s.onFrame(frame(workerproto.FrameRespFile, uint64(2)<<32, p)); err != nil || c.file != nil {
		t.Fatalf("stale id: %v, %v", err, c.file)
	}
	if err := s.onFrame(frame(workerproto.FrameRespFile, id, p)); err != nil {
		t.Fatal(err)
	}
	clear(p) // the ring reuses the record
	if c.file == nil || !c.gotHead || !c.done || c.file.Path != "/srv/a.txt" || c.file.Status != 200 ||
		string(c.file.Headers[0].Name) != "content-disposition" || string(c.file.Headers[0].Value) != "attachment" {
		t.Fatalf("call after RESP_FILE: %+v", c.file)
	}
	if err := s.onFrame(frame(workerproto.FrameRespFile, id, respFilePayload(t, 200, "/b"))); !errors.Is(err, errSequence) {
		t.Fatalf("second answer: %v, want errSequence", err)
	}
	s2, c2, id2 := hintSession()
	defer putCall(c2)
	f := frame(workerproto.FrameRespFile, id2, respFilePayload(t, 200, "/b"))
	f.Flags = workerproto.FlagBegin
	if err := s2.onFrame(f); err == nil {
		t.Fatal("a fragmented RESP_FILE was taken")
	}
	if err := s2.onFrame(frame(workerproto.FrameRespFile, id2, []byte{0x93, 0xcc})); err == nil {
		t.Fatal("a malformed RESP_FILE was taken")
	}
}

type fileRecorder struct {
	plainRecorder
	status int
	path   string
}

func (r *fileRecorder) WriteFile(status int, _ []workerproto.Header, path string) error {
	r.status, r.path = status, path
	return nil
}

// TestWriteFile: the answer reaches a FileWriter; a writer without it gets
// ErrNoFileWriter (a 502 the front end answers).
func TestWriteFile(t *testing.T) {
	rf := &workerproto.RespFile{Status: 404, Path: "/x"}
	r := &fileRecorder{}
	if err := writeFile(r, rf); err != nil || r.status != 404 || r.path != "/x" {
		t.Fatalf("%v %+v", err, r)
	}
	if err := writeFile(plainRecorder{}, rf); err != ErrNoFileWriter {
		t.Fatalf("plain writer: %v", err)
	}
}

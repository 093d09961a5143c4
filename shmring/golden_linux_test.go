package shmring

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite ../workerproto/testdata/records and testdata/fuzz seeds")

const recordsDir = "../workerproto/testdata/records"

// goldenCapacity is the ring the vectors are laid out for.
const goldenCapacity = 4096

// goldenRecord is one entry of records.json.
type goldenRecord struct {
	File        string `json:"file"`
	Description string `json:"description"`
	Capacity    uint64 `json:"capacity"` // ring capacity the record was written into
	Index       uint64 `json:"index"`    // ring index of the record's first byte
	Type        int32  `json:"type"`
	ID          uint64 `json:"id"`
	Flags       uint32 `json:"flags"`
	Payload     string `json:"payload"`     // lower-case hex; "" for none
	Length      uint64 `json:"length"`      // the record header's length field
	PaddedSize  uint64 `json:"padded_size"` // bytes the record occupies: align8(length)
}

type goldenFile struct {
	Comment string         `json:"comment"`
	Records []goldenRecord `json:"records"`
}

// Minimal MessagePack writers for representative payloads (shmring itself never
// looks inside payloads).
func mpStr(s string) []byte    { return append([]byte{0xa0 | byte(len(s))}, s...) } // fixstr, < 32 bytes
func mpBin(b string) []byte    { return append([]byte{0xc4, byte(len(b))}, b...) }  // bin 8
func mpArr(n int) []byte       { return []byte{0x90 | byte(n)} }                    // fixarray
func mpUint16(v uint16) []byte { return []byte{0xcd, byte(v >> 8), byte(v)} }
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func goldenTable() []goldenRecord {
	reqHead := cat(mpArr(12), mpStr("GET"), mpStr("/users/42"), mpStr("a=1"),
		mpArr(2), mpStr("host"), mpBin("example.com"),
		mpStr("/users/{id:int}"), mpArr(2), mpStr("id"), mpStr("42"),
		mpStr("1.1"), mpStr("http"), mpStr("127.0.0.1:50000"), mpStr("req-1"),
		[]byte{0x00}, mpUint16(30000))
	respHead := cat(mpArr(3), mpUint16(200), mpArr(2), mpStr("content-type"), mpBin("text/plain"), []byte{0x05})
	errPayload := cat(mpArr(2), mpUint16(499), mpStr("cancelled"))
	window := cat(mpArr(1), []byte{0xce, 0x00, 0x04, 0x00, 0x00}) // [262144]
	wsCredit := cat(mpArr(1), mpUint16(16448))                    // [16448]
	control := cat([]byte{0x81}, mpStr("op"), mpStr("noop"))      // fixmap {"op": "noop"}
	trailers := cat(mpArr(4), mpStr("grpc-status"), mpBin("0"), mpStr("x-served-by"), mpBin("w1"))
	maxBody := pattern(7, MaxPayload(goldenCapacity))

	recs := []goldenRecord{
		{File: "req_head.hex", Description: "REQ_HEAD, one frame (BEGIN|END), id generation 1 slot 1", Type: 16, ID: 1<<32 | 1, Flags: 3, Payload: hex.EncodeToString(reqHead)},
		{File: "req_body_begin.hex", Description: "REQ_BODY first fragment (BEGIN only)", Type: 17, ID: 1<<32 | 1, Flags: 1, Payload: hex.EncodeToString([]byte("hello, "))},
		{File: "req_body_middle.hex", Description: "REQ_BODY middle fragment (no flags)", Type: 17, ID: 1<<32 | 1, Flags: 0, Payload: hex.EncodeToString([]byte("wide "))},
		{File: "req_body_end.hex", Description: "REQ_BODY last fragment (END only)", Type: 17, ID: 1<<32 | 1, Flags: 2, Payload: hex.EncodeToString([]byte("world"))},
		{File: "req_body_empty.hex", Description: "REQ_BODY of length 0: one frame, BEGIN|END, no payload", Type: 17, ID: 0xfffffffe_00000007, Flags: 3},
		{File: "resp_head.hex", Description: "RESP_HEAD, one frame", Type: 32, ID: 0xfffffffe_00000007, Flags: 3, Payload: hex.EncodeToString(respHead)},
		{File: "resp_body.hex", Description: "RESP_BODY, one frame; length 29 needs 3 bytes of alignment padding", Type: 33, ID: 0xfffffffe_00000007, Flags: 3, Payload: hex.EncodeToString([]byte("hello"))},
		{File: "resp.hex", Description: "RESP: the RESP_HEAD above and its 5-byte body in one frame (BEGIN|END)", Type: 34, ID: 0xfffffffe_00000008, Flags: 3, Payload: hex.EncodeToString(cat(respHead, []byte("hello")))},
		{File: "resp_body_max.hex", Description: "RESP_BODY middle fragment of the largest size a 4096-byte ring allows (record = capacity/8)", Type: 33, ID: 2<<32 | 9, Flags: 0, Payload: hex.EncodeToString(maxBody)},
		{File: "resp_trailers.hex", Description: "RESP_TRAILERS [grpc-status 0, x-served-by w1]: ends the streamed body of the RESP_BODY above's exchange, flags BEGIN|END", Type: 96, ID: 0xfffffffe_00000007, Flags: 3, Payload: hex.EncodeToString(trailers)},
		{File: "cancel.hex", Description: "CANCEL: empty, flags BEGIN|END|CANCEL", Type: 48, ID: 3<<32 | 5, Flags: 0x7},
		{File: "error.hex", Description: "ERROR [499, \"cancelled\"], flags BEGIN|END|ERR", Type: 49, ID: 3<<32 | 5, Flags: 0xb, Payload: hex.EncodeToString(errPayload)},
		{File: "window.hex", Description: "WINDOW [262144]: 256 KiB more response body, flags BEGIN|END", Type: 50, ID: 3<<32 | 6, Flags: 3, Payload: hex.EncodeToString(window)},
		{File: "ws_text_begin.hex", Description: "WS_TEXT first fragment (BEGIN only) of the text message \"héllo, world\"", Type: 82, ID: 4<<32 | 11, Flags: 1, Payload: hex.EncodeToString([]byte("héllo, "))},
		{File: "ws_text_end.hex", Description: "WS_TEXT last fragment (END only): the message is the two payloads joined", Type: 82, ID: 4<<32 | 11, Flags: 2, Payload: hex.EncodeToString([]byte("world"))},
		{File: "ws_credit.hex", Description: "WS_CREDIT [16448]: the cost of a 16 KiB message in one frame (16384 + 64) granted back, flags BEGIN|END", Type: 85, ID: 4<<32 | 11, Flags: 3, Payload: hex.EncodeToString(wsCredit)},
		{File: "control.hex", Description: "CONTROL {\"op\": \"noop\"}, id 0", Type: 64, ID: 0, Flags: 3, Payload: hex.EncodeToString(control)},
		{File: "pad.hex", Description: "PAD of 16 bytes at index 4080 of a 4096-byte ring: no frame header; the 8 bytes after the record header are zero (consumed space)", Type: TypePad, Index: goldenCapacity - 16},
	}
	for i := range recs {
		r := &recs[i]
		r.Capacity = goldenCapacity
		n, _ := hex.DecodeString(r.Payload)
		if r.Type == TypePad {
			r.Length = goldenCapacity - r.Index
		} else {
			r.Length = uint64(FrameOverhead + len(n))
		}
		r.PaddedSize = align8(r.Length)
	}
	return recs
}

// recordHex renders a record's bytes in the commented hex format of README.md.
func recordHex(rec goldenRecord, b []byte) string {
	var s strings.Builder
	fmt.Fprintf(&s, "# %s\n# %s: type %d, id %#016x, flags %#x, length %d, padded size %d\n",
		strings.TrimSuffix(rec.File, ".hex"), rec.Description, rec.Type, rec.ID, rec.Flags, rec.Length, rec.PaddedSize)
	line := func(comment string, p []byte) {
		if len(p) == 0 {
			return
		}
		fmt.Fprintf(&s, "# %s\n", comment)
		for len(p) > 0 {
			n := min(16, len(p))
			fmt.Fprintf(&s, "%s\n", hex.EncodeToString(p[:n]))
			p = p[n:]
		}
	}
	line("record header: length i32, type i32", b[:8])
	if rec.Type == TypePad {
		line("rest of the PAD record (not written by the producer; zero)", b[8:])
		return s.String()
	}
	line("frame header: id u64, flags u32, reserved u32", b[8:24])
	line("payload", b[24:rec.Length])
	line("alignment padding (zero)", b[rec.Length:])
	return s.String()
}

// parseHex reads the format of README.md: '#' lines are comments, whitespace is
// ignored, the rest is lower-case hex.
func parseHex(text string) ([]byte, error) {
	var h strings.Builder
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		for _, f := range strings.Fields(l) {
			if strings.ToLower(f) != f {
				return nil, fmt.Errorf("upper-case hex %q", f)
			}
			h.WriteString(f)
		}
	}
	return hex.DecodeString(h.String())
}

// encodeGolden writes rec into a fresh ring of a real segment and returns the
// record's bytes as they lie in the ring.
func encodeGolden(t *testing.T, rec goldenRecord) []byte {
	s := newTestSegment(t, Geometry{ReqCapacity: rec.Capacity, RespCapacity: MinCapacity})
	r := s.RequestRing()
	if rec.Type == TypePad {
		// Bring the ring to rec.Index, then write a frame that does not fit before
		// the end: the producer writes the PAD.
		startAt(r, rec.Index)
		p := NewMPSCProducer(r, nil)
		if err := p.TryWrite(16, 0, 0, make([]byte, int(rec.Length))); err != nil {
			t.Fatal(err)
		}
	} else {
		payload, _ := hex.DecodeString(rec.Payload)
		p := NewMPSCProducer(r, nil)
		if err := p.TryWrite(rec.Type, rec.ID, rec.Flags, payload); err != nil {
			t.Fatal(err)
		}
	}
	return bytes.Clone(r.buf[rec.Index : rec.Index+rec.PaddedSize])
}

func TestGoldenRecords(t *testing.T) {
	table := goldenTable()
	if *update {
		if err := os.MkdirAll(recordsDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, rec := range table {
			b := encodeGolden(t, rec)
			if err := os.WriteFile(filepath.Join(recordsDir, rec.File), []byte(recordHex(rec, b)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		j, _ := json.MarshalIndent(goldenFile{
			Comment: "Golden data-plane records (PROTOCOL.md §2.2, §6); see README.md in this folder.",
			Records: table,
		}, "", "  ")
		if err := os.WriteFile(filepath.Join(recordsDir, "records.json"), append(j, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	raw, err := os.ReadFile(filepath.Join(recordsDir, "records.json"))
	if err != nil {
		t.Fatalf("%v (run go test -run TestGoldenRecords -update)", err)
	}
	var gf goldenFile
	if err := json.Unmarshal(raw, &gf); err != nil {
		t.Fatal(err)
	}
	if len(gf.Records) != len(table) {
		t.Fatalf("records.json has %d records, the table %d: run with -update", len(gf.Records), len(table))
	}
	for i, rec := range gf.Records {
		t.Run(rec.File, func(t *testing.T) {
			if rec != table[i] {
				t.Fatalf("records.json entry differs from the table: run with -update\n got %+v\nwant %+v", rec, table[i])
			}
			text, err := os.ReadFile(filepath.Join(recordsDir, rec.File))
			if err != nil {
				t.Fatal(err)
			}
			want, err := parseHex(string(text))
			if err != nil {
				t.Fatal(err)
			}
			if uint64(len(want)) != rec.PaddedSize {
				t.Fatalf("%s holds %d bytes, padded_size is %d", rec.File, len(want), rec.PaddedSize)
			}
			// Encode: the producer lays the record out byte for byte.
			if got := encodeGolden(t, rec); !bytes.Equal(got, want) {
				t.Fatalf("ring bytes differ from %s\n got %x\nwant %x", rec.File, got, want)
			}
			// Decode: the consumer parses the vector back to the same fields.
			r := newHeapRing(t, rec.Capacity)
			startAt(r, rec.Index)
			putU64(r, CtlTail, rec.Index+rec.PaddedSize)
			copy(r.buf[rec.Index:], want)
			c := mustConsumer(t, r)
			frames := pollAll(t, c)
			if c.Head() != rec.Index+rec.PaddedSize {
				t.Fatalf("head %d after the record, want %d", c.Head(), rec.Index+rec.PaddedSize)
			}
			if rec.Type == TypePad {
				if len(frames) != 0 {
					t.Fatalf("PAD delivered %d frames", len(frames))
				}
				return
			}
			if len(frames) != 1 {
				t.Fatalf("%d frames", len(frames))
			}
			f := frames[0]
			if f.Type != rec.Type || f.ID != rec.ID || f.Flags != rec.Flags || hex.EncodeToString(f.payload) != rec.Payload {
				t.Fatalf("decoded %+v payload %x", f.Frame, f.payload)
			}
		})
	}
}

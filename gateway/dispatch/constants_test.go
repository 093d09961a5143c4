package dispatch

import (
	"testing"

	"github.com/covetpy/covetpy/shmring"
	"github.com/covetpy/covetpy/workerproto"
)

// The leaves never import each other (ARCHITECTURE.md section 4), so workerproto
// repeats a few numbers of the segment layout that shmring defines. The dispatcher
// uses both; this test holds them to one value.
func TestWorkerprotoAgreesWithShmring(t *testing.T) {
	for _, c := range []struct {
		name        string
		proto, ring int64
	}{
		{"protocol version / segment header version", workerproto.Version, shmring.Version},
		{"SegmentHeaderSize / HeaderSize", workerproto.SegmentHeaderSize, shmring.HeaderSize},
		{"RingControlSize / ControlBlockSize", workerproto.RingControlSize, shmring.ControlBlockSize},
		{"MinRingCapacity / MinCapacity", workerproto.MinRingCapacity, shmring.MinCapacity},
		{"MaxRingCapacity / MaxCapacity", workerproto.MaxRingCapacity, shmring.MaxCapacity},
		{"FlagBegin", int64(workerproto.FlagBegin), int64(shmring.FlagBegin)},
		{"FlagEnd", int64(workerproto.FlagEnd), int64(shmring.FlagEnd)},
		{"FramePad / TypePad", int64(workerproto.FramePad), int64(shmring.TypePad)},
	} {
		if c.proto != c.ring {
			t.Errorf("%s: workerproto %d, shmring %d", c.name, c.proto, c.ring)
		}
	}
	// Every other frame type of the protocol is one the rings carry.
	for typ := workerproto.FrameType(0); typ < 256; typ++ {
		if typ.Known() && typ != workerproto.FramePad && (int32(typ) < shmring.MinFrameType || int32(typ) > shmring.MaxFrameType) {
			t.Errorf("frame type %v (%d) is outside shmring's %d..%d", typ, typ, shmring.MinFrameType, shmring.MaxFrameType)
		}
	}
	// The segment size a worker expects from a welcome is the one the gateway maps.
	for _, g := range []shmring.Geometry{
		{ReqCapacity: shmring.MinCapacity, RespCapacity: shmring.MinCapacity},
		{ReqCapacity: 1 << 20, RespCapacity: DefaultResponseRing},
		{ReqCapacity: shmring.MaxCapacity, RespCapacity: 1 << 16},
	} {
		w := workerproto.Welcome{Version: workerproto.Version, WorkerID: 1, Epoch: 1, HeartbeatMS: 1000,
			SegmentSize: int64(g.SegmentSize()), ReqCapacity: int64(g.ReqCapacity), RespCapacity: int64(g.RespCapacity)}
		if err := w.Validate(); err != nil {
			t.Errorf("geometry %+v: the welcome for it is refused: %v", g, err)
		}
	}
}

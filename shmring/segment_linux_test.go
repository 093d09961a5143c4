package shmring

import (
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func newTestSegment(tb testing.TB, g Geometry) *Segment {
	tb.Helper()
	s, err := CreateSegment(g, HeaderInit{GatewayPID: 11, WorkerPID: 22, Epoch: 33})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// TestLayout checks the segment against the numbers of PROTOCOL.md §2.1, written
// here as literals on purpose.
func TestLayout(t *testing.T) {
	for _, c := range []struct{ got, want int }{
		{OffMagic, 0}, {OffVersion, 8}, {OffHeaderSize, 12}, {OffSegmentSize, 16},
		{OffReqOffset, 24}, {OffReqCapacity, 32}, {OffRespOffset, 40}, {OffRespCapacity, 48},
		{OffGatewayPID, 56}, {OffWorkerPID, 60}, {OffEpoch, 64}, {OffWorkerHeartbeat, 128},
		{OffWorkerState, 192}, {HeaderSize, 4096}, {ControlBlockSize, 1024},
		{CtlTail, 0}, {CtlHeadCache, 128}, {CtlHead, 256}, {CtlConsumerSleeping, 384},
		{CtlProducerWaiting, 512}, {RecordHeaderSize, 8}, {FrameHeaderSize, 16},
		{MinCapacity, 4096}, {MaxCapacity, 1 << 30}, {int(TypePad), 1},
		{int(FlagBegin), 1}, {int(FlagEnd), 2},
	} {
		if c.got != c.want {
			t.Errorf("constant = %d, want %d", c.got, c.want)
		}
	}

	s := newTestSegment(t, Geometry{ReqCapacity: 4096, RespCapacity: 8192})
	m := s.mem
	le := binary.LittleEndian
	if string(m[0:8]) != "COVETSHM" {
		t.Errorf("magic %q", m[0:8])
	}
	for _, c := range []struct {
		off  int
		size int
		want uint64
	}{
		{8, 4, 1}, {12, 4, 4096}, {16, 8, 4096 + 1024 + 4096 + 1024 + 8192},
		{24, 8, 4096}, {32, 8, 4096}, {40, 8, 4096 + 1024 + 4096}, {48, 8, 8192},
		{56, 4, 11}, {60, 4, 22}, {64, 8, 33},
	} {
		var got uint64
		if c.size == 4 {
			got = uint64(le.Uint32(m[c.off:]))
		} else {
			got = le.Uint64(m[c.off:])
		}
		if got != c.want {
			t.Errorf("header offset %d = %d, want %d", c.off, got, c.want)
		}
	}
	if s.Size() != 18432 || uint64(len(m)) != 18432 {
		t.Fatalf("size %d, mapped %d", s.Size(), len(m))
	}

	// Header fields written after set-up.
	s.SetWorkerHeartbeat(0x0102030405060708)
	s.SetWorkerState(StateDraining)
	s.SetWorkerPID(99)
	if le.Uint64(m[128:]) != 0x0102030405060708 || le.Uint32(m[192:]) != 2 || le.Uint32(m[60:]) != 99 {
		t.Error("heartbeat / state / worker_pid not at 128 / 192 / 60")
	}

	// Ring control blocks and data, through the rings' own operations.
	for _, rc := range []struct {
		r   *Ring
		off int
	}{{s.RequestRing(), 4096}, {s.ResponseRing(), 4096 + 1024 + 4096}} {
		ctl := m[rc.off:]
		p := NewMPSCProducer(rc.r, nil)
		c := mustConsumer(t, rc.r)
		if err := p.TryWrite(16, 0xAABB, 3, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if got := le.Uint64(ctl[0:]); got != 32 {
			t.Errorf("ring at %d: tail at +0 = %d, want 32", rc.off, got)
		}
		rec := ctl[1024:]
		if le.Uint32(rec[0:]) != 26 || le.Uint32(rec[4:]) != 16 || le.Uint64(rec[8:]) != 0xAABB ||
			le.Uint32(rec[16:]) != 3 || le.Uint32(rec[20:]) != 0 || string(rec[24:26]) != "hi" {
			t.Errorf("ring at %d: record bytes % x", rc.off, rec[:32])
		}
		pollAll(t, c)
		if got := le.Uint64(ctl[256:]); got != 32 {
			t.Errorf("ring at %d: head at +256 = %d, want 32", rc.off, got)
		}
		c.sleepAndRecheck()
		if le.Uint32(ctl[384:]) != 1 {
			t.Errorf("ring at %d: consumer_sleeping not at +384", rc.off)
		}
		p.setWaiting()
		if le.Uint32(ctl[512:]) != 1 {
			t.Errorf("ring at %d: producer_waiting not at +512", rc.off)
		}
		// Fill the ring so the producer refreshes head_cache (+128) from head.
		for i := 0; ; i++ {
			if err := p.TryWrite(16, 1, 0, make([]byte, 200)); err == ErrFull {
				break
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if got := le.Uint64(ctl[128:]); got != 32 {
			t.Errorf("ring at %d: head_cache at +128 = %d, want 32", rc.off, got)
		}
	}
}

func TestGeometry(t *testing.T) {
	g := Geometry{}.WithDefaults()
	if g.ReqCapacity != 1<<20 || g.RespCapacity != 1<<20 || g.Validate() != nil {
		t.Fatalf("defaults %+v", g)
	}
	for _, bad := range []Geometry{{}, {4096, 2048}, {4096, 6144}, {1 << 31, 4096}, {4096, 0}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, err := CreateSegment(Geometry{4096, 5000}, HeaderInit{Epoch: 1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad capacity: %v", err)
	}
	if _, err := CreateSegment(Geometry{}, HeaderInit{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("zero epoch: %v", err)
	}
}

func TestOpenSegment(t *testing.T) {
	s := newTestSegment(t, Geometry{ReqCapacity: 8192, RespCapacity: 4096})
	o, err := OpenSegment(s.Fd())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.Geometry() != s.Geometry() || o.Epoch() != 33 || o.GatewayPID() != 11 || o.WorkerPID() != 22 {
		t.Fatalf("opened %+v epoch %d pids %d %d", o.Geometry(), o.Epoch(), o.GatewayPID(), o.WorkerPID())
	}
	if o.Fd() == s.Fd() {
		t.Fatal("OpenSegment did not duplicate the fd")
	}
	// Two mappings of one memfd: gateway writes requests, "worker" reads them.
	gw := NewMPSCProducer(s.RequestRing(), nil)
	wk := mustConsumer(t, o.RequestRing())
	if err := gw.TryWrite(16, 5, FlagBegin|FlagEnd, []byte("GET /")); err != nil {
		t.Fatal(err)
	}
	if got := pollAll(t, wk); len(got) != 1 || string(got[0].payload) != "GET /" {
		t.Fatalf("%+v", got)
	}
	o.SetWorkerState(StateReady)
	o.SetWorkerHeartbeat(MonotonicNow())
	if s.WorkerState() != StateReady || s.WorkerHeartbeat() == 0 {
		t.Fatal("worker fields not shared")
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestOpenSegmentRejectsBadHeaders scribbles each header field in turn.
func TestOpenSegmentRejectsBadHeaders(t *testing.T) {
	le := binary.LittleEndian
	for _, tc := range []struct {
		name   string
		mutate func(m []byte)
		reason string
	}{
		{"magic", func(m []byte) { m[0] = 'X' }, "magic"},
		{"version", func(m []byte) { le.PutUint32(m[8:], 2) }, "version"},
		{"header_size", func(m []byte) { le.PutUint32(m[12:], 8192) }, "header_size"},
		{"segment_size", func(m []byte) { le.PutUint64(m[16:], 1<<40) }, "segment_size"},
		{"req_offset", func(m []byte) { le.PutUint64(m[24:], 0) }, "req_offset"},
		{"req_capacity", func(m []byte) { le.PutUint64(m[32:], 4095) }, "req_capacity"},
		{"req_capacity other power", func(m []byte) { le.PutUint64(m[32:], 4096) }, "resp_offset"},
		{"resp_offset", func(m []byte) { le.PutUint64(m[40:], 4096) }, "resp_offset"},
		{"resp_capacity", func(m []byte) { le.PutUint64(m[48:], 1<<31) }, "resp_capacity"},
		{"resp_capacity other power", func(m []byte) { le.PutUint64(m[48:], 4096) }, "segment_size"},
		{"epoch", func(m []byte) { le.PutUint64(m[64:], 0) }, "epoch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSegment(t, Geometry{ReqCapacity: 8192, RespCapacity: 8192})
			tc.mutate(s.mem)
			o, err := OpenSegment(s.Fd())
			if err == nil {
				o.Close()
			}
			wantCorrupt(t, err, tc.reason)
		})
	}

	// Consistent header, but the file is a different size than it says.
	t.Run("file size", func(t *testing.T) {
		s := newTestSegment(t, Geometry{ReqCapacity: 8192, RespCapacity: 8192})
		g := Geometry{ReqCapacity: 4096, RespCapacity: 4096}
		le.PutUint64(s.mem[16:], g.SegmentSize())
		le.PutUint64(s.mem[32:], 4096)
		le.PutUint64(s.mem[40:], g.RespOffset())
		le.PutUint64(s.mem[48:], 4096)
		_, err := OpenSegment(s.Fd())
		wantCorrupt(t, err, "memfd size")
	})

	t.Run("unsealed memfd", func(t *testing.T) {
		fd, err := unix.MemfdCreate("test", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		unix.Ftruncate(fd, int64(Geometry{4096, 4096}.SegmentSize()))
		_, err = OpenSegment(fd)
		wantCorrupt(t, err, "not sealed")
	})

	t.Run("not a memfd", func(t *testing.T) {
		f, err := os.Open("/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := OpenSegment(int(f.Fd())); err == nil {
			t.Fatal("accepted /dev/null")
		}
	})
}

func TestSegmentIsSealed(t *testing.T) {
	s := newTestSegment(t, Geometry{4096, 4096})
	if err := unix.Ftruncate(s.Fd(), 1<<20); err == nil {
		t.Fatal("memfd can grow")
	}
	if err := unix.Ftruncate(s.Fd(), 4096); err == nil {
		t.Fatal("memfd can shrink")
	}
	if _, err := unix.FcntlInt(uintptr(s.Fd()), unix.F_ADD_SEALS, unix.F_SEAL_WRITE); err == nil {
		t.Fatal("seals can still be added")
	}
	flags, err := unix.FcntlInt(uintptr(s.Fd()), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("memfd not close-on-exec (%v)", err)
	}
}

func listDir(tb testing.TB, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names
}

// TestNoLeaks: segments and doorbells leave no descriptors and no /dev/shm files.
func TestNoLeaks(t *testing.T) {
	fds := len(listDir(t, "/proc/self/fd"))
	var shm []string
	if _, err := os.Stat("/dev/shm"); err == nil {
		shm = listDir(t, "/dev/shm")
	}
	for range 20 {
		s, err := CreateSegment(Geometry{4096, 4096}, HeaderInit{Epoch: 1})
		if err != nil {
			t.Fatal(err)
		}
		o, err := OpenSegment(s.Fd())
		if err != nil {
			t.Fatal(err)
		}
		d, err := NewDoorbell()
		if err != nil {
			t.Fatal(err)
		}
		d2, err := OpenDoorbell(d.Fd())
		if err != nil {
			t.Fatal(err)
		}
		if shm != nil && !slices.Equal(listDir(t, "/dev/shm"), shm) {
			t.Fatal("segment created a file under /dev/shm")
		}
		for _, c := range []interface{ Close() error }{o, s, d2, d, s, d} { // twice: idempotent
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := len(listDir(t, "/proc/self/fd")); got != fds {
		t.Fatalf("open fds: %d before, %d after", fds, got)
	}
	if shm != nil && !slices.Equal(listDir(t, "/dev/shm"), shm) {
		t.Fatal("/dev/shm changed")
	}
}

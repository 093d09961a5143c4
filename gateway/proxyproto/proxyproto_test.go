package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// v2 builds a version 2 header by hand: ver/cmd, fam/transport, then body
// (addresses and TLVs), its length computed.
func v2(verCmd, famTr byte, body ...byte) []byte {
	b := append([]byte(Signature), verCmd, famTr)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var (
	inet4 = cat([]byte{192, 0, 2, 1}, []byte{198, 51, 100, 2}, []byte{0xDC, 0x04}, []byte{0x01, 0xBB}) // 56324 -> 443
	inet6 = cat(netip.MustParseAddr("2001:db8::1").AsSlice(), netip.MustParseAddr("2001:db8::2").AsSlice(), []byte{0xDC, 0x04, 0x01, 0xBB})
	// A TLV (type 0x04, PP2_TYPE_NOOP, 3 bytes) and a PP2_TYPE_AUTHORITY.
	tlvs = cat([]byte{0x04, 0, 3, 'x', 'y', 'z'}, []byte{0x02, 0, 11}, []byte("example.com"))
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Header
	}{
		// The spec's (haproxy.org proxy-protocol.txt 2.1) examples.
		{"v1 TCP4", []byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
			Header{Version: 1, Source: ap("192.168.0.1:56324"), Dest: ap("192.168.0.11:443")}},
		{"v1 TCP6 full", []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
			Header{Version: 1, Source: ap("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"), Dest: ap("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")}},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), Header{Version: 1}},
		{"v1 UNKNOWN with addresses", []byte("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"), Header{Version: 1}},
		{"v1 ports 0", []byte("PROXY TCP4 10.0.0.1 10.0.0.2 0 0\r\n"), Header{Version: 1, Source: ap("10.0.0.1:0"), Dest: ap("10.0.0.2:0")}},
		{"v1 TCP6 mapped", []byte("PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n"), Header{Version: 1, Source: ap("[::ffff:10.0.0.1]:1"), Dest: ap("[::1]:2")}},

		{"v2 TCP4", v2(0x21, 0x11, inet4...), Header{Version: 2, Source: ap("192.0.2.1:56324"), Dest: ap("198.51.100.2:443")}},
		{"v2 TCP4 TLVs", v2(0x21, 0x11, cat(inet4, tlvs)...), Header{Version: 2, Source: ap("192.0.2.1:56324"), Dest: ap("198.51.100.2:443")}},
		{"v2 TCP6", v2(0x21, 0x21, inet6...), Header{Version: 2, Source: ap("[2001:db8::1]:56324"), Dest: ap("[2001:db8::2]:443")}},
		{"v2 TCP6 TLVs", v2(0x21, 0x21, cat(inet6, tlvs)...), Header{Version: 2, Source: ap("[2001:db8::1]:56324"), Dest: ap("[2001:db8::2]:443")}},
		{"v2 LOCAL", v2(0x20, 0x00), Header{Version: 2, Local: true}},
		{"v2 LOCAL with addresses", v2(0x20, 0x11, inet4...), Header{Version: 2, Local: true}},
		{"v2 LOCAL any family", v2(0x20, 0x12, inet4...), Header{Version: 2, Local: true}},
		{"v2 UNSPEC", v2(0x21, 0x00), Header{Version: 2}},
		{"v2 UNSPEC with TLVs", v2(0x21, 0x00, tlvs...), Header{Version: 2}},
		{"v2 UNIX stream", v2(0x21, 0x31, make([]byte, 216)...), Header{Version: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			follow := []byte("GET / HTTP/1.1\r\n")
			h, n, err := Parse(append(append([]byte(nil), tt.in...), follow...))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if n != len(tt.in) {
				t.Fatalf("n = %d, want %d", n, len(tt.in))
			}
			if h != tt.want {
				t.Fatalf("header = %+v, want %+v", h, tt.want)
			}
			// Every proper prefix is a valid start: need more.
			for i := range len(tt.in) {
				if _, _, err := Parse(tt.in[:i]); err != ErrNeedMore {
					t.Fatalf("Parse(first %d bytes) = %v, want ErrNeedMore", i, err)
				}
			}
		})
	}
}

func TestParseV1LongestIs107(t *testing.T) {
	full := []byte("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n")
	if len(full) != MaxV1Len {
		t.Fatalf("the spec's worst case is %d bytes, MaxV1Len %d", len(full), MaxV1Len)
	}
	long := []byte("PROXY UNKNOWN " + strings.Repeat("x", MaxV1Len) + "\r\n")
	if _, _, err := Parse(long); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "no CRLF within 107") {
		t.Fatalf("Parse(%d-byte line) = %v, want no CRLF within 107 bytes", len(long), err)
	}
	// One byte short of the limit with no CRLF yet: still a valid start.
	if _, _, err := Parse(long[:MaxV1Len-1]); err != ErrNeedMore {
		t.Fatalf("Parse(106 bytes of UNKNOWN) = %v, want ErrNeedMore", err)
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name, want string
		in         []byte
	}{
		{"plain HTTP", "starts neither", []byte("GET / HTTP/1.1\r\n")},
		{"TLS ClientHello", "starts neither", []byte{0x16, 0x03, 0x01, 0x00, 0xa5}},
		{"lower case", "first byte 'p'", []byte("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n")},
		{"PRI", "is not \"PROXY \"", []byte("PRI * HTTP/2.0\r\n")},
		{"PROXX", "is not \"PROXY \"", []byte("PROXX")},
		{"bad protocol", "protocol \"UDP4\"", []byte("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n")},
		{"bad protocol partial", "protocol \"TCPX\"", []byte("PROXY TCPX")},
		{"LF only", "LF without CR", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n")},
		{"too few fields", "needs 4 fields", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n")},
		{"too many fields", "needs 4 fields", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n")},
		{"too many fields partial", "more than four fields", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3")},
		{"double space", "needs 4 fields", []byte("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n")},
		{"v6 in TCP4", "not IPv4 (TCP4)", []byte("PROXY TCP4 ::1 5.6.7.8 1 2\r\n")},
		{"v4 in TCP6", "not IPv6 (TCP6)", []byte("PROXY TCP6 ::1 5.6.7.8 1 2\r\n")},
		{"bad address", "source address \"1.2.3\"", []byte("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n")},
		{"zone", "is not an IP address", []byte("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n")},
		{"bad byte partial", "byte 'x'", []byte("PROXY TCP4 1.2.x")},
		{"port range", "source port \"65536\"", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n")},
		{"port leading zero", "destination port \"080\"", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 080\r\n")},
		{"port sign", "source port \"+1\"", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n")},
		{"port empty", "destination port \"\"", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n")},

		{"v2 bad signature", "bad signature", []byte("\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x0c")},
		{"v2 bad signature short", "bad signature", []byte("\r\n\r\r")},
		{"v2 version 1", "version 1 is not 2", v2(0x11, 0x11, inet4...)},
		{"v2 version 3", "version 3 is not 2", v2(0x31, 0x11, inet4...)},
		{"v2 command 2", "command 0x2", v2(0x22, 0x11, inet4...)},
		{"v2 family 4", "family/transport byte 0x41", v2(0x21, 0x41, inet4...)},
		{"v2 transport 3", "family/transport byte 0x13", v2(0x21, 0x13, inet4...)},
		{"v2 UDP4", "datagram", v2(0x21, 0x12, inet4...)},
		{"v2 UDP6", "datagram", v2(0x21, 0x22, inet6...)},
		{"v2 UNIX dgram", "datagram", v2(0x21, 0x32, make([]byte, 216)...)},
		{"v2 IPv4 unspec transport", "IPv4 with unspecified transport", v2(0x21, 0x10, inet4...)},
		{"v2 IPv6 unspec transport", "IPv6 with unspecified transport", v2(0x21, 0x20, inet6...)},
		{"v2 short IPv4", "short of the 12 bytes", v2(0x21, 0x11, inet4[:11]...)},
		{"v2 short IPv6", "short of the 36 bytes", v2(0x21, 0x21, inet4...)},
		{"v2 short UNIX", "short of the 216 bytes", v2(0x21, 0x31, make([]byte, 215)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, n, err := Parse(tt.in)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse = %v (n %d), want an ErrInvalid", err, n)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %q, want it to say %q", err, tt.want)
			}
		})
	}
}

// The length field bounds a version 2 header: bytes after it are the
// client's, whatever they look like, and Parse waits for all of it.
func TestParseV2LengthBounded(t *testing.T) {
	h := v2(0x21, 0x11, cat(inet4, tlvs)...)
	in := append(append([]byte(nil), h...), v2(0x21, 0x11, inet4...)...) // a second header is data
	_, n, err := Parse(in)
	if err != nil || n != len(h) {
		t.Fatalf("Parse = n %d, %v; want n %d", n, err, len(h))
	}
	// The largest length: all of it must arrive, and then it parses.
	big := v2(0x21, 0x11, cat(inet4, make([]byte, 0xFFFF-len(inet4)))...)
	if len(big) != MaxV2Len {
		t.Fatalf("len = %d, want %d", len(big), MaxV2Len)
	}
	if _, _, err := Parse(big[:MaxV2Len-1]); err != ErrNeedMore {
		t.Fatalf("Parse(all but one byte) = %v, want ErrNeedMore", err)
	}
	if _, n, err := Parse(big); err != nil || n != MaxV2Len {
		t.Fatalf("Parse(largest) = n %d, %v", n, err)
	}
}

func TestAppendRoundTrip(t *testing.T) {
	hs := []Header{
		{Source: ap("192.0.2.1:56324"), Dest: ap("198.51.100.2:443")},
		{Source: ap("[2001:db8::1]:1"), Dest: ap("[2001:db8::2]:65535")},
		{Source: ap("[::ffff:10.1.2.3]:9"), Dest: ap("[::1]:8")},
		{},
		{Local: true},
	}
	for _, h := range hs {
		for _, v := range []int{1, 2} {
			var b []byte
			if v == 1 {
				b = h.AppendV1(nil)
			} else {
				b = h.AppendV2(nil)
			}
			got, n, err := Parse(b)
			want := h
			want.Version = v
			if v == 1 && h.Local {
				want.Local = false // v1 has no LOCAL: UNKNOWN
			}
			if err != nil || n != len(b) || got != want {
				t.Errorf("v%d %+v: Parse(%q) = %+v, %d, %v", v, h, b, got, n, err)
			}
		}
	}
}

func TestParseAllocs(t *testing.T) {
	// Version 1's addresses are parsed from strings (netip.ParseAddr), two
	// small allocations; version 2 makes none.
	for _, in := range [][]byte{v2(0x21, 0x21, cat(inet6, tlvs)...), v2(0x21, 0x11, inet4...)} {
		if a := testing.AllocsPerRun(100, func() { Parse(in) }); a != 0 {
			t.Errorf("Parse(%q) allocates %v times", in[:8], a)
		}
	}
}

// FuzzParse checks Parse's invariants on any input: no panic; a header's
// length within the input and the version's bounds; ErrNeedMore only for a
// valid start (some continuation of it parses, tried with the input's own
// parse of a longer form); a parsed header re-encodes to one that parses to
// the same addresses.
func FuzzParse(f *testing.F) {
	seeds := [][]byte{
		[]byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n\r\n"),
		[]byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n"),
		[]byte("PROXY UNKNOWN\r\n"),
		[]byte("PROXY UNKNOWN whatever\r\n"),
		[]byte("PROXY TCP4 1.2.3.4"),
		v2(0x21, 0x11, inet4...),
		v2(0x21, 0x21, cat(inet6, tlvs)...),
		v2(0x20, 0x00),
		v2(0x21, 0x31, make([]byte, 216)...),
		v2(0x21, 0x12, inet4...),
		[]byte(Signature[:7]),
		[]byte("GET / HTTP/1.1\r\n"),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := Parse(b)
		switch {
		case err == ErrNeedMore:
			if n != 0 {
				t.Fatalf("ErrNeedMore with n %d", n)
			}
			if len(b) >= MaxV2Len {
				t.Fatalf("ErrNeedMore with %d bytes", len(b))
			}
			if len(b) > 0 && b[0] == 'P' && len(b) >= MaxV1Len {
				t.Fatalf("v1 ErrNeedMore with %d bytes", len(b))
			}
			return
		case err != nil:
			if !errors.Is(err, ErrInvalid) || n != 0 {
				t.Fatalf("error %v (n %d) is not ErrInvalid", err, n)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("n = %d of %d bytes", n, len(b))
		}
		if h.Version == 1 && n > MaxV1Len || h.Version == 2 && (n < 16 || n > MaxV2Len) || h.Version < 1 || h.Version > 2 {
			t.Fatalf("version %d header of %d bytes", h.Version, n)
		}
		// Every proper prefix of the header is a valid start.
		if _, _, err := Parse(b[:n-1]); err != ErrNeedMore {
			t.Fatalf("Parse(header less one byte) = %v, want ErrNeedMore", err)
		}
		// The bytes after it do not change it.
		h2, n2, err := Parse(b[:n])
		if err != nil || n2 != n || h2 != h {
			t.Fatalf("Parse(header alone) = %+v %d %v, want %+v %d", h2, n2, err, h, n)
		}
		if h.Local && h.Source.IsValid() {
			t.Fatalf("LOCAL with a source: %+v", h)
		}
		if h.Source.IsValid() != h.Dest.IsValid() {
			t.Fatalf("one address without the other: %+v", h)
		}
		if h.Source.IsValid() && h.Source.Addr().Is4() != h.Dest.Addr().Is4() {
			t.Fatalf("mixed families: %+v", h)
		}
		re := h.AppendV2(nil)
		if g, m, err := Parse(re); err != nil || m != len(re) || g.Source != h.Source || g.Dest != h.Dest || g.Local != h.Local {
			t.Fatalf("re-encoded %+v as %x: parses to %+v %d %v", h, re, g, m, err)
		}
	})
}

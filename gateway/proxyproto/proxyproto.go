// Package proxyproto is a sans-IO parser (and, for tests and clients, an
// encoder) of the PROXY protocol header, versions 1 and 2, that a load
// balancer in front of the gateway (HAProxy, nginx's proxy_protocol, a cloud
// network load balancer) sends first on each TCP connection to say whose
// connection it relays.
//
// Parse works on the bytes a connection has read so far and never touches a
// socket:
//
//	h, n, err := proxyproto.Parse(buf)
//	switch {
//	case err == proxyproto.ErrNeedMore: // buf is a valid start: read more
//	case err != nil: // not a PROXY header (errors.Is(err, ErrInvalid)): close
//	default: // buf[:n] was the header; buf[n:] is the client's first bytes
//	}
//
// Version 1 is one text line of at most 107 bytes, CRLF included:
//
//	PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n
//	PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n
//	PROXY UNKNOWN\r\n   (anything may follow UNKNOWN up to the CRLF)
//
// Version 2 is binary: the 12-byte signature, a version/command byte (0x20
// LOCAL, 0x21 PROXY), a family/transport byte (0x11 TCP over IPv4, 0x21 TCP
// over IPv6, 0x31 UNIX stream, 0x00 unspecified), a 16-bit length of what
// follows, the addresses (12, 36 or 216 bytes), then TLVs. Parse bounds
// itself by that length: it never looks past it, whatever follows. TLVs are
// skipped without being interpreted.
//
// What a Header means for the connection:
//
//   - Local (version 2 LOCAL: the balancer's own health check): use the
//     socket's own addresses. Source is not valid.
//   - Source not valid (v1 UNKNOWN, v2 UNSPEC or UNIX): the relay does not
//     know or cannot say; use the socket's addresses.
//   - Otherwise Source is the client and Dest the address it connected to.
//
// Datagram transports (UDP, UNIX datagram) are refused: the gateway reads
// the header on stream connections only.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// MaxV1Len is the longest version 1 header, CRLF included.
const MaxV1Len = 107

// MaxV2Len is the longest version 2 header: 16 bytes and a 16-bit length.
const MaxV2Len = 16 + 0xFFFF

// Signature starts every version 2 header.
const Signature = "\r\n\r\n\x00\r\nQUIT\n"

// v1Prefix starts every version 1 header.
const v1Prefix = "PROXY "

var (
	// ErrNeedMore: the bytes are a valid beginning of a header; read more
	// and call Parse again with all of them.
	ErrNeedMore = errors.New("proxyproto: need more bytes")
	// ErrInvalid is wrapped by every error that says the bytes are no
	// PROXY header, with the reason.
	ErrInvalid = errors.New("proxyproto: invalid header")
)

// Header is a parsed PROXY header.
type Header struct {
	// Version is 1 or 2.
	Version int
	// Local is a version 2 LOCAL command: the balancer's own connection
	// (a health check); Source and Dest are not valid.
	Local bool
	// Source is the client's address and port, Dest the address it
	// connected to; both not valid (the zero AddrPort) when the header
	// gives none (Local, v1 UNKNOWN, v2 UNSPEC or UNIX).
	Source, Dest netip.AddrPort
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Parse parses the PROXY header at the start of b. It returns the header and
// its length n (the client's own bytes start at b[n:]), ErrNeedMore when b
// is a valid beginning of a header but not all of one, or an error wrapping
// ErrInvalid saying why b cannot start one.
func Parse(b []byte) (h Header, n int, err error) {
	switch {
	case len(b) == 0:
		return Header{}, 0, ErrNeedMore
	case b[0] == 'P':
		return parseV1(b)
	case b[0] == '\r':
		return parseV2(b)
	}
	return Header{}, 0, invalid("first byte %q starts neither version 1 (\"PROXY \") nor version 2 (the signature)", b[0])
}

func parseV1(b []byte) (Header, int, error) {
	if len(b) < len(v1Prefix) {
		if string(b) != v1Prefix[:len(b)] {
			return Header{}, 0, invalid("v1: %q is not \"PROXY \"", b)
		}
		return Header{}, 0, ErrNeedMore
	}
	if string(b[:len(v1Prefix)]) != v1Prefix {
		return Header{}, 0, invalid("v1: %q is not \"PROXY \"", b[:len(v1Prefix)])
	}
	lf := bytes.IndexByte(b[:min(len(b), MaxV1Len)], '\n')
	if lf < 0 {
		if len(b) >= MaxV1Len {
			return Header{}, 0, invalid("v1: no CRLF within %d bytes", MaxV1Len)
		}
		if err := checkV1Partial(b[len(v1Prefix):]); err != nil {
			return Header{}, 0, err
		}
		return Header{}, 0, ErrNeedMore
	}
	if lf == 0 || b[lf-1] != '\r' {
		return Header{}, 0, invalid("v1: line ends in LF without CR")
	}
	line := b[len(v1Prefix) : lf-1]
	h, err := parseV1Line(line)
	if err != nil {
		return Header{}, 0, err
	}
	return h, lf + 1, nil
}

// checkV1Partial refuses an incomplete v1 line that no more bytes can
// make valid: a bad protocol, a byte no field may hold, too many fields.
func checkV1Partial(rest []byte) error {
	proto, after, complete := bytes.Cut(rest, []byte{' '})
	if !complete {
		proto = bytes.TrimSuffix(proto, []byte{'\r'})
		for _, p := range [...]string{"TCP4", "TCP6", "UNKNOWN"} {
			if len(proto) <= len(p) && string(proto) == p[:len(proto)] {
				return nil
			}
		}
		return invalid("v1: protocol %q is not TCP4, TCP6 or UNKNOWN", proto)
	}
	switch string(proto) {
	case "UNKNOWN":
		return nil // anything may follow, up to the CRLF
	case "TCP4", "TCP6":
	default:
		return invalid("v1: protocol %q is not TCP4, TCP6 or UNKNOWN", proto)
	}
	fields := 1
	for i, c := range after {
		switch {
		case c == ' ':
			fields++
			if fields > 4 {
				return invalid("v1: more than four fields after %s", proto)
			}
		case c == '\r' && i == len(after)-1:
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F', c == '.', c == ':':
		default:
			return invalid("v1: byte %q in an address or port", c)
		}
	}
	return nil
}

func parseV1Line(line []byte) (Header, error) {
	h := Header{Version: 1}
	proto, rest, _ := bytes.Cut(line, []byte{' '})
	switch string(proto) {
	case "UNKNOWN":
		return h, nil // the receiver ignores the rest of the line
	case "TCP4", "TCP6":
	default:
		return Header{}, invalid("v1: protocol %q is not TCP4, TCP6 or UNKNOWN", proto)
	}
	f := bytes.Split(rest, []byte{' '})
	if len(f) != 4 {
		return Header{}, invalid("v1: %s needs 4 fields (source, destination, ports), got %d", proto, len(f))
	}
	src, err := v1Addr(proto, "source", f[0])
	if err != nil {
		return Header{}, err
	}
	dst, err := v1Addr(proto, "destination", f[1])
	if err != nil {
		return Header{}, err
	}
	sp, err := v1Port("source", f[2])
	if err != nil {
		return Header{}, err
	}
	dp, err := v1Port("destination", f[3])
	if err != nil {
		return Header{}, err
	}
	h.Source, h.Dest = netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp)
	return h, nil
}

func v1Addr(proto []byte, which string, f []byte) (netip.Addr, error) {
	a, err := netip.ParseAddr(string(f))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, invalid("v1: %s address %q is not an IP address", which, f)
	}
	if string(proto) == "TCP4" && !a.Is4() {
		return netip.Addr{}, invalid("v1: %s address %q is not IPv4 (TCP4)", which, f)
	}
	if string(proto) == "TCP6" && !a.Is6() {
		return netip.Addr{}, invalid("v1: %s address %q is not IPv6 (TCP6)", which, f)
	}
	return a, nil
}

func v1Port(which string, f []byte) (uint16, error) {
	if len(f) == 0 || len(f) > 5 || (len(f) > 1 && f[0] == '0') {
		return 0, invalid("v1: %s port %q is not a decimal number 0..65535", which, f)
	}
	p := 0
	for _, c := range f {
		if c < '0' || c > '9' {
			return 0, invalid("v1: %s port %q is not a decimal number 0..65535", which, f)
		}
		p = 10*p + int(c-'0')
	}
	if p > 0xFFFF {
		return 0, invalid("v1: %s port %q is not a decimal number 0..65535", which, f)
	}
	return uint16(p), nil
}

// Address block sizes of version 2, by family.
const (
	v2Inet  = 12
	v2Inet6 = 36
	v2Unix  = 216
)

func parseV2(b []byte) (Header, int, error) {
	if len(b) < len(Signature) {
		if string(b) != Signature[:len(b)] {
			return Header{}, 0, invalid("v2: bad signature")
		}
		return Header{}, 0, ErrNeedMore
	}
	if string(b[:len(Signature)]) != Signature {
		return Header{}, 0, invalid("v2: bad signature")
	}
	if len(b) < 13 {
		return Header{}, 0, ErrNeedMore
	}
	verCmd := b[12]
	if verCmd>>4 != 2 {
		return Header{}, 0, invalid("v2: version %d is not 2", verCmd>>4)
	}
	cmd := verCmd & 0x0F
	if cmd > 1 {
		return Header{}, 0, invalid("v2: command %#x is neither LOCAL (0) nor PROXY (1)", cmd)
	}
	if len(b) < 14 {
		return Header{}, 0, ErrNeedMore
	}
	fam, transport := b[13]>>4, b[13]&0x0F
	if fam > 3 || transport > 2 {
		return Header{}, 0, invalid("v2: unknown family/transport byte %#02x", b[13])
	}
	if len(b) < 16 {
		return Header{}, 0, ErrNeedMore
	}
	length := int(binary.BigEndian.Uint16(b[14:16]))
	total := 16 + length
	if len(b) < total {
		return Header{}, 0, ErrNeedMore
	}
	h := Header{Version: 2}
	if cmd == 0 {
		// LOCAL: "the receiver must accept this connection as valid and
		// must use the real connection endpoints and discard the protocol
		// block including the family".
		h.Local = true
		return h, total, nil
	}
	if transport == 2 {
		return Header{}, 0, invalid("v2: datagram transport on a stream connection")
	}
	addrs := b[16:total]
	switch fam {
	case 0: // UNSPEC: no address to use
		return h, total, nil
	case 1:
		if transport != 1 {
			return Header{}, 0, invalid("v2: IPv4 with unspecified transport")
		}
		if len(addrs) < v2Inet {
			return Header{}, 0, invalid("v2: length %d is short of the %d bytes of IPv4 addresses", length, v2Inet)
		}
		src := netip.AddrFrom4([4]byte(addrs[0:4]))
		dst := netip.AddrFrom4([4]byte(addrs[4:8]))
		h.Source = netip.AddrPortFrom(src, binary.BigEndian.Uint16(addrs[8:10]))
		h.Dest = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(addrs[10:12]))
	case 2:
		if transport != 1 {
			return Header{}, 0, invalid("v2: IPv6 with unspecified transport")
		}
		if len(addrs) < v2Inet6 {
			return Header{}, 0, invalid("v2: length %d is short of the %d bytes of IPv6 addresses", length, v2Inet6)
		}
		src := netip.AddrFrom16([16]byte(addrs[0:16]))
		dst := netip.AddrFrom16([16]byte(addrs[16:32]))
		h.Source = netip.AddrPortFrom(src, binary.BigEndian.Uint16(addrs[32:34]))
		h.Dest = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(addrs[34:36]))
	case 3: // UNIX: paths, not addresses the gateway can use
		if len(addrs) < v2Unix {
			return Header{}, 0, invalid("v2: length %d is short of the %d bytes of UNIX addresses", length, v2Unix)
		}
	}
	return h, total, nil
}

// AppendV1 appends h as a version 1 header: TCP4 or TCP6 by h.Source's
// family (an IPv4-mapped IPv6 address counts as IPv6), UNKNOWN when Source
// is not valid or Local. Dest must be of Source's family.
func (h Header) AppendV1(b []byte) []byte {
	if h.Local || !h.Source.IsValid() {
		return append(b, "PROXY UNKNOWN\r\n"...)
	}
	proto := "TCP6 "
	if h.Source.Addr().Is4() {
		proto = "TCP4 "
	}
	b = append(b, v1Prefix...)
	b = append(b, proto...)
	b = h.Source.Addr().AppendTo(b)
	b = append(b, ' ')
	b = h.Dest.Addr().AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(h.Source.Port()), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(h.Dest.Port()), 10)
	return append(b, "\r\n"...)
}

// AppendV2 appends h as a version 2 header, with no TLVs: LOCAL when
// h.Local, PROXY with UNSPEC addresses when Source is not valid, else PROXY
// TCP over IPv4 or IPv6 by Source's family (Dest must be of the same).
func (h Header) AppendV2(b []byte) []byte {
	b = append(b, Signature...)
	switch {
	case h.Local:
		return append(b, 0x20, 0x00, 0, 0)
	case !h.Source.IsValid():
		return append(b, 0x21, 0x00, 0, 0)
	case h.Source.Addr().Is4():
		b = append(b, 0x21, 0x11, 0, v2Inet)
		s, d := h.Source.Addr().As4(), h.Dest.Addr().As4()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
	default:
		b = append(b, 0x21, 0x21, 0, v2Inet6)
		s, d := h.Source.Addr().As16(), h.Dest.Addr().As16()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, h.Source.Port())
	return binary.BigEndian.AppendUint16(b, h.Dest.Port())
}

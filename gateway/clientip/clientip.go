// Package clientip finds a request's client address when the gateway runs
// behind reverse proxies or load balancers that say whom they forward for in
// the Forwarded (RFC 7239) or X-Forwarded-For request header.
//
// Nothing is trusted by default: with trusted_proxies empty (New returns a
// nil *Resolver, which is ready to use) the client is always the socket's
// peer, and both headers are only passed on to the worker as any header is.
// A client can write either header itself, so they are believed only as far
// as the hops that wrote them are trusted:
//
//   - When the peer is not in trusted_proxies, the client is the peer; the
//     headers are not even looked at (and nothing is allocated).
//   - When it is, the header's hops are walked from the right (the hop the
//     peer added last) to the left, skipping the hops that are themselves
//     trusted; the first untrusted one is the client. If every hop is
//     trusted, the leftmost is the client.
//   - Forwarded takes precedence: when a request carries any Forwarded
//     field, X-Forwarded-For is ignored. Each element's for= parameter is a
//     hop ("192.0.2.60", "\"[2001:db8::17]:4711\"", "\"192.0.2.1:80\"").
//   - A hop that names no address (Forwarded's for=unknown, an obfuscated
//     identifier such as for=_hidden, an element without for=, or
//     "unknown" in X-Forwarded-For) ends the walk: the client is then the
//     last trusted hop met (the peer when it is the first), since nothing
//     more to the left can be checked.
//   - A header that does not parse (an entry that is no address, a
//     malformed Forwarded element) is ignored whole: the client is the peer.
//
// X-Forwarded-For entries may be bare addresses or carry a port
// ("192.0.2.1:1234", "[2001:db8::1]:1234"). Every field of a header counts,
// in order, each a comma-separated list. IPv4-mapped IPv6 addresses
// (::ffff:192.0.2.1) are taken as the IPv4 address, both to match
// trusted_proxies and in the result.
//
// The result has the form of REQ_HEAD's client, "ip:port" ("[ip6]:port"
// for IPv6): the port is the one Forwarded's for= gives, or X-Forwarded-For's
// entry when it has one, and 0 when it is not known (a bare address, an
// obfuscated port).
package clientip

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/covetpy/covetpy/workerproto"
)

// Config is the trusted_proxies setting.
type Config struct {
	// TrustedProxies are the proxies whose Forwarded and X-Forwarded-For
	// headers are believed: CIDRs ("10.0.0.0/8", "2001:db8::/32") or single
	// addresses ("192.0.2.7", "::1"). A CIDR's host bits are ignored
	// ("10.1.2.3/8" is 10.0.0.0/8). Empty (the default): none, the client
	// is always the socket's peer.
	TrustedProxies []string `config:"trusted_proxies" help:"proxies whose Forwarded / X-Forwarded-For headers are believed, CIDRs or single IPs (comma-separated); empty = none: the client is the socket's peer"`
}

// Resolver picks a request's client address. A nil *Resolver trusts no one.
// It is immutable and safe for concurrent use.
type Resolver struct {
	trusted []netip.Prefix
}

// ErrInvalid is wrapped by every error New returns.
var ErrInvalid = errors.New("clientip: invalid config")

// New returns the Resolver for cfg, or nil when it trusts no proxy. An entry
// that is neither an IP address nor a CIDR is an error naming it.
func New(cfg Config) (*Resolver, error) {
	if len(cfg.TrustedProxies) == 0 {
		return nil, nil
	}
	r := &Resolver{}
	for _, e := range cfg.TrustedProxies {
		s := strings.TrimSpace(e)
		if s == "" {
			return nil, fmt.Errorf("%w: trusted_proxies: empty entry", ErrInvalid)
		}
		var p netip.Prefix
		if strings.Contains(s, "/") {
			var err error
			if p, err = netip.ParsePrefix(s); err != nil {
				return nil, fmt.Errorf("%w: trusted_proxies: %q is not a CIDR (like 10.0.0.0/8 or 2001:db8::/32)", ErrInvalid, e)
			}
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%w: trusted_proxies: %q is not an IP address or CIDR", ErrInvalid, e)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		r.trusted = append(r.trusted, p.Masked())
	}
	return r, nil
}

// Trusts reports whether ip is one of the trusted proxies.
func (r *Resolver) Trusts(ip netip.Addr) bool {
	if r == nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range r.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Client returns the client address of a request that came from peer (the
// socket's "ip:port", "[ip6]:port" for IPv6) with headers (names in any
// case), as the package doc says: peer itself unless peer is a trusted
// proxy and a Forwarded or X-Forwarded-For header names another. It
// allocates nothing when it returns peer because peer is not trusted.
func (r *Resolver) Client(peer string, headers []workerproto.Header) string {
	if r == nil {
		return peer
	}
	pa, err := netip.ParseAddrPort(peer)
	if err != nil || !r.Trusts(pa.Addr()) {
		return peer
	}
	var store [8]hop
	hops, ok := forwardedHops(headers, store[:0])
	if !ok || len(hops) == 0 {
		return peer
	}
	last, isPeer := pa, true
	for i := len(hops) - 1; i >= 0; i-- {
		h := hops[i]
		if !h.addr.IsValid() {
			break // unknown or obfuscated: the last trusted hop
		}
		ap := netip.AddrPortFrom(h.addr, h.port)
		if !r.Trusts(h.addr) {
			return ap.String()
		}
		last, isPeer = ap, false
	}
	if isPeer {
		return peer
	}
	return last.String()
}

// hop is one forwarding hop; addr is not valid for one that names no
// address (unknown, obfuscated, missing).
type hop struct {
	addr netip.Addr
	port uint16
}

// forwardedHops collects the hops of the request's Forwarded fields, or,
// when it has none, of its X-Forwarded-For fields, appended to hops in
// order (leftmost first). ok is false when a field does not parse.
func forwardedHops(headers []workerproto.Header, hops []hop) (_ []hop, ok bool) {
	fwd := false
	for _, h := range headers {
		if workerproto.NameIs(h.Name, "forwarded") {
			fwd = true
			break
		}
	}
	for _, h := range headers {
		switch {
		case fwd && workerproto.NameIs(h.Name, "forwarded"):
			if hops, ok = appendForwarded(hops, h.Value); !ok {
				return nil, false
			}
		case !fwd && workerproto.NameIs(h.Name, "x-forwarded-for"):
			if hops, ok = appendXFF(hops, h.Value); !ok {
				return nil, false
			}
		}
	}
	return hops, true
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// appendXFF appends the hops of one X-Forwarded-For field: a comma-separated
// list of addresses, each maybe with a port.
func appendXFF(hops []hop, v []byte) ([]hop, bool) {
	for len(v) > 0 {
		var item []byte
		item, v, _ = bytes.Cut(v, []byte{','})
		item = bytes.TrimFunc(item, func(r rune) bool { return r == ' ' || r == '\t' })
		if len(item) == 0 {
			return nil, false
		}
		if string(item) == "unknown" {
			hops = append(hops, hop{})
			continue
		}
		h, ok := parseNode(item, false)
		if !ok || !h.addr.IsValid() {
			return nil, false
		}
		hops = append(hops, h)
	}
	return hops, true
}

// parseNode parses an address with or without a port: "192.0.2.1",
// "192.0.2.1:80", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:80". With
// forwarded (RFC 7239 node syntax), "unknown" and obfuscated names ("_x")
// give a hop with no address, an obfuscated port gives port 0, and a bare
// IPv6 address must be bracketed.
func parseNode(s []byte, forwarded bool) (hop, bool) {
	if forwarded && (bytes.HasPrefix(s, []byte("unknown")) || len(s) > 0 && s[0] == '_') {
		name, port, hasPort := bytes.Cut(s, []byte{':'})
		if string(name) != "unknown" && !obfuscated(name) || hasPort && !validPort(port) {
			return hop{}, false
		}
		return hop{}, true
	}
	var host, port []byte
	hasPort := false
	switch {
	case len(s) > 0 && s[0] == '[':
		end := bytes.IndexByte(s, ']')
		if end < 0 {
			return hop{}, false
		}
		host, port = s[1:end], s[end+1:]
		if len(port) > 0 {
			if port[0] != ':' {
				return hop{}, false
			}
			port, hasPort = port[1:], true
		}
		if bytes.IndexByte(host, ':') < 0 {
			return hop{}, false // brackets hold IPv6 only
		}
	case bytes.Count(s, []byte{':'}) == 1:
		host, port, hasPort = bytes.Cut(s, []byte{':'})
	default:
		if forwarded && bytes.IndexByte(s, ':') >= 0 {
			return hop{}, false // RFC 7239 6.1: IPv6 in brackets
		}
		host = s
	}
	a, ok := parseIP(host)
	if !ok {
		return hop{}, false
	}
	h := hop{addr: a.Unmap()}
	if hasPort {
		if !validPort(port) || !forwarded && port[0] == '_' {
			return hop{}, false
		}
		if port[0] != '_' { // an obfuscated port: not known, 0
			h.port, _ = parsePort(port)
		}
	}
	return h, true
}

// validPort reports whether b is a port number or an obfuscated port.
func validPort(b []byte) bool {
	if len(b) > 0 && b[0] == '_' {
		return obfuscated(b)
	}
	_, ok := parsePort(b)
	return ok
}

func parseIP(b []byte) (netip.Addr, bool) {
	a, err := netip.ParseAddr(string(b))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 {
		return 0, false
	}
	p := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		p = 10*p + int(c-'0')
	}
	return uint16(p), p <= 0xFFFF
}

// obfuscated reports whether s is an RFC 7239 obfnode or obfport: "_"
// followed by letters, digits, ".", "_" or "-".
func obfuscated(s []byte) bool {
	if len(s) < 2 || s[0] != '_' {
		return false
	}
	for _, c := range s[1:] {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// appendForwarded appends the hops of one Forwarded field (RFC 7239 4):
// comma-separated elements of semicolon-separated name=value pairs, each
// value a token or a quoted-string. An element's hop is its for= value, or
// one with no address when it has none.
func appendForwarded(hops []hop, v []byte) ([]hop, bool) {
	i := 0
	for {
		var (
			h      hop
			hasFor bool
		)
		for { // the pairs of one element
			for i < len(v) && isOWS(v[i]) {
				i++
			}
			start := i
			for i < len(v) && isTchar(v[i]) {
				i++
			}
			name := v[start:i]
			if len(name) == 0 || i >= len(v) || v[i] != '=' {
				return nil, false
			}
			i++
			var val []byte
			if i < len(v) && v[i] == '"' {
				end := i + 1
				for end < len(v) && v[end] != '"' {
					if v[end] == '\\' { // a quoted-pair: no address holds one
						return nil, false
					}
					end++
				}
				if end >= len(v) {
					return nil, false
				}
				val, i = v[i+1:end], end+1
			} else {
				start = i
				for i < len(v) && isTchar(v[i]) {
					i++
				}
				val = v[start:i]
				if len(val) == 0 {
					return nil, false
				}
			}
			if len(name) == 3 && (name[0]|0x20) == 'f' && (name[1]|0x20) == 'o' && (name[2]|0x20) == 'r' {
				if hasFor {
					return nil, false // RFC 7239 4: each parameter at most once
				}
				var ok bool
				if h, ok = parseNode(val, true); !ok {
					return nil, false
				}
				hasFor = true
			}
			for i < len(v) && isOWS(v[i]) {
				i++
			}
			if i < len(v) && v[i] == ';' {
				i++
				continue
			}
			break
		}
		hops = append(hops, h) // the zero hop when there was no for=
		if i == len(v) {
			return hops, true
		}
		if v[i] != ',' {
			return nil, false
		}
		i++
	}
}

// isTchar reports whether c is an RFC 9110 token character.
func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

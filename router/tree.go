package router

import (
	"sort"
	"strings"
)

// node is one vertex of a method's radix tree. Static text is compressed
// byte-wise (an edge may stop inside a segment); parameter edges always span
// exactly one segment and hang only off nodes whose path ends in '/'.
//
// A tree is built once per snapshot and never mutated after the snapshot is
// published, so lookups read it without synchronisation.
type node struct {
	// prefix is the static text consumed on entering a static node; empty
	// for the root and for parameter nodes (the parent consumes their
	// segment before descending).
	prefix string
	// typ is set on parameter nodes only.
	typ *paramType
	// owner is the pattern that created this node; named in conflicts.
	owner string

	indices string  // first byte of each static child, parallel to statics
	statics []*node // static children; their prefixes start with distinct bytes
	params  []*node // parameter children, ordered by typ.order (typed before str)

	leaf     int32 // route index ending exactly here, or -1
	catchAll int32 // route index of a catch-all hanging here, or -1
}

func newNode(prefix, owner string) *node {
	return &node{prefix: prefix, owner: owner, leaf: -1, catchAll: -1}
}

// match finds the route for rest, the part of the path left after n consumed
// its own text. It tries, in order: a route ending here, the static child,
// the parameter children (typed before str), the catch-all; a branch that
// fails further down is undone and the next one is tried. Parameter values are
// pushed onto ps as substrings of rest. It returns the route index, or -1 with
// ps.n as it was on entry.
func (n *node) match(rest string, ps *Params) int32 {
	if rest == "" {
		if n.leaf >= 0 {
			return n.leaf
		}
	} else {
		// Plain loops beat strings.IndexByte here: the strings are short.
		for i := 0; i < len(n.indices); i++ {
			if n.indices[i] != rest[0] {
				continue
			}
			c := n.statics[i]
			if len(rest) >= len(c.prefix) && rest[:len(c.prefix)] == c.prefix {
				if r := c.match(rest[len(c.prefix):], ps); r >= 0 {
					return r
				}
			}
			break
		}
		if len(n.params) > 0 {
			end := 0
			for end < len(rest) && rest[end] != '/' {
				end++
			}
			if end > 0 {
				seg := rest[:end]
				k := ps.n
				for _, pc := range n.params {
					if pc.typ.match != nil && !pc.typ.match(seg) {
						continue
					}
					ps.p[k].Value = seg
					ps.n = k + 1
					if r := pc.match(rest[end:], ps); r >= 0 {
						return r
					}
					ps.n = k
				}
			}
		}
	}
	if n.catchAll >= 0 {
		ps.p[ps.n].Value = rest
		ps.n++
		return n.catchAll
	}
	return -1
}

// insert adds route idx with pattern p below the root n. routePattern maps a
// route index to its pattern for error messages.
func (n *node) insert(method string, p *pattern, idx int32, routePattern func(int32) string) error {
	conflict := func(existing, reason string) error {
		return &ConflictError{Method: method, Pattern: p.raw, Existing: existing,
			Duplicate: existing == p.raw, Reason: reason}
	}
	for _, tok := range p.tokens {
		switch tok.kind {
		case tokStatic:
			n = n.insertStatic(tok.text, p.raw)
		case tokParam:
			var next *node
			for _, pc := range n.params {
				if pc.typ == tok.typ {
					next = pc
					break
				}
				if pc.typ != typeStr && tok.typ != typeStr && !pc.typ.disjointFrom(tok.typ) {
					return conflict(pc.owner, "parameter types "+pc.typ.name+" and "+tok.typ.name+
						" at the same position can match the same segment")
				}
			}
			if next == nil {
				next = newNode("", p.raw)
				next.typ = tok.typ
				n.params = append(n.params, next)
				sort.SliceStable(n.params, func(i, j int) bool { return n.params[i].typ.order < n.params[j].typ.order })
			}
			n = next
		case tokCatchAll:
			if n.catchAll >= 0 {
				return conflict(routePattern(n.catchAll), "both end in a catch-all at the same position")
			}
			n.catchAll = idx
			return nil
		}
	}
	if n.leaf >= 0 {
		return conflict(routePattern(n.leaf), "same static text and parameter types at every position")
	}
	n.leaf = idx
	return nil
}

// insertStatic walks (and extends) the static edges below n along s and
// returns the node at which s ends, splitting an edge where s leaves it.
func (n *node) insertStatic(s, owner string) *node {
	for s != "" {
		i := strings.IndexByte(n.indices, s[0])
		if i < 0 {
			c := newNode(s, owner)
			n.indices += s[:1]
			n.statics = append(n.statics, c)
			return c
		}
		c := n.statics[i]
		l := 0
		for l < len(s) && l < len(c.prefix) && s[l] == c.prefix[l] {
			l++
		}
		if l < len(c.prefix) {
			tail := *c
			tail.prefix = c.prefix[l:]
			*c = node{prefix: c.prefix[:l], owner: c.owner, leaf: -1, catchAll: -1,
				indices: tail.prefix[:1], statics: []*node{&tail}}
		}
		s = s[l:]
		n = c
	}
	return n
}

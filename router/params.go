package router

import "net/url"

// Param is one matched path parameter.
type Param struct {
	Name  string // the name from the pattern, e.g. "id" for {id:int}
	Value string // the raw segment(s) from the path, still percent-encoded
}

// Params holds the parameters of one lookup. It has a fixed capacity of
// [MaxParams] so that a caller can keep one on its stack or inside a
// per-connection struct and look up without allocating. The zero value is
// empty and ready to use.
//
// Values are substrings of the path given to [Router.Lookup]; no bytes are
// copied. If that path aliases a reusable buffer (unsafe.String over a read
// buffer), the values are valid only as long as the buffer is: copy them
// (strings.Clone) before the buffer is reused.
type Params struct {
	n int
	p [MaxParams]Param
}

// Len returns the number of parameters.
func (ps *Params) Len() int { return ps.n }

// At returns the i'th parameter in path order. It panics if i is out of range.
func (ps *Params) At(i int) Param { return ps.p[:ps.n][i] }

// Slice returns the parameters in path order. The slice aliases ps: it is
// overwritten by the next lookup that uses ps.
func (ps *Params) Slice() []Param { return ps.p[:ps.n] }

// Get returns the raw value of the parameter called name.
func (ps *Params) Get(name string) (string, bool) {
	for i := 0; i < ps.n; i++ {
		if ps.p[i].Name == name {
			return ps.p[i].Value, true
		}
	}
	return "", false
}

// Reset empties ps.
func (ps *Params) Reset() { ps.n = 0 }

// Unescape percent-decodes a raw parameter value ("a%2Fb" -> "a/b"). '+' is
// left alone (it means a space only in query strings). It returns s itself,
// without allocating, when s holds no '%', and an error for a malformed escape.
func Unescape(s string) (string, error) {
	return url.PathUnescape(s)
}

package router

import (
	"errors"
	"fmt"
)

// Sentinels for errors.Is. Every error the router returns wraps exactly one.
var (
	// ErrInvalidPattern: the pattern does not follow the syntax of the
	// package doc. The error is a *PatternError.
	ErrInvalidPattern = errors.New("router: invalid pattern")
	// ErrInvalidMethod: the method is empty, not an RFC 9110 token, or one
	// too many distinct methods were registered.
	ErrInvalidMethod = errors.New("router: invalid method")
	// ErrConflict: two patterns on one method could match the same path and
	// the precedence rules cannot choose. The error is a *ConflictError.
	ErrConflict = errors.New("router: conflicting routes")
	// ErrDuplicate: the same (method, pattern) pair twice. The error is a
	// *ConflictError with Duplicate set.
	ErrDuplicate = errors.New("router: duplicate route")
)

// PatternError describes an invalid pattern.
type PatternError struct {
	Pattern string // the pattern as given
	Offset  int    // byte offset of the problem in Pattern
	Reason  string // what is wrong, e.g. "unclosed '{'"
}

func (e *PatternError) Error() string {
	return fmt.Sprintf("router: invalid pattern %q at offset %d: %s", e.Pattern, e.Offset, e.Reason)
}

func (e *PatternError) Unwrap() error { return ErrInvalidPattern }

// ConflictError names the rejected route and the route it collides with.
// Both may come from the same Add call.
type ConflictError struct {
	Method    string // the method both routes are registered on
	Pattern   string // the pattern being added
	Existing  string // the pattern it collides with
	Duplicate bool   // Pattern == Existing
	Reason    string // why they collide
}

func (e *ConflictError) Error() string {
	if e.Duplicate {
		return fmt.Sprintf("router: duplicate route %s %s", e.Method, e.Pattern)
	}
	return fmt.Sprintf("router: %s %s conflicts with %s %s: %s",
		e.Method, e.Pattern, e.Method, e.Existing, e.Reason)
}

func (e *ConflictError) Unwrap() error {
	if e.Duplicate {
		return ErrDuplicate
	}
	return ErrConflict
}

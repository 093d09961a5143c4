package shmring

// Assembler limits' defaults.
const (
	DefaultMaxMessage = 1 << 20 // PROTOCOL.md §4: assembled head / error / control message
	DefaultMaxOpen    = 4096    // messages in progress at once
)

// Assembler joins the fragments of whole messages (heads, ERROR, CONTROL; bodies are
// streamed instead) keyed by (id, type), enforcing PROTOCOL.md §2.4: a continuation
// needs an open message, BEGIN may not arrive while one is open, and an assembled
// message is at most MaxMessage bytes. Violations return an error wrapping ErrCorrupt.
// The zero value is ready to use. Not safe for concurrent use.
type Assembler struct {
	MaxMessage int // largest assembled payload; 0 means DefaultMaxMessage
	MaxOpen    int // most messages in progress; 0 means DefaultMaxOpen

	open map[asmKey]*[]byte
	free []*[]byte // buffers to reuse
	last *[]byte   // returned by the previous Add; recycled by the next call
}

type asmKey struct {
	id  uint64
	typ int32
}

const asmFreeMax = 16 // buffers kept for reuse

// Add feeds one frame. When f completes a message, Add returns its payload and
// done = true. The payload is f.Payload itself for a one-frame message, otherwise a
// buffer owned by the Assembler; either way it is valid only until the next call on
// the Assembler and until the callback that received f returns. Copy it to keep it.
func (a *Assembler) Add(f Frame) (msg []byte, done bool, err error) {
	a.recycle()
	max := a.MaxMessage
	if max <= 0 {
		max = DefaultMaxMessage
	}
	k := asmKey{f.ID, f.Type}
	b, isOpen := a.open[k]
	begin, end := f.Flags&FlagBegin != 0, f.Flags&FlagEnd != 0
	switch {
	case begin && isOpen:
		a.drop(k, b)
		return nil, false, &MessageError{ID: f.ID, Type: f.Type, Reason: "BEGIN while a message is open"}
	case !begin && !isOpen:
		return nil, false, &MessageError{ID: f.ID, Type: f.Type, Reason: "fragment without BEGIN"}
	case begin && end:
		if len(f.Payload) > max {
			return nil, false, &MessageError{ID: f.ID, Type: f.Type, Reason: "message larger than the limit"}
		}
		return f.Payload, true, nil
	case begin:
		maxOpen := a.MaxOpen
		if maxOpen <= 0 {
			maxOpen = DefaultMaxOpen
		}
		if len(a.open) >= maxOpen {
			return nil, false, &MessageError{ID: f.ID, Type: f.Type, Reason: "too many open messages"}
		}
		if len(f.Payload) > max {
			return nil, false, &MessageError{ID: f.ID, Type: f.Type, Reason: "message larger than the limit"}
		}
		if a.open == nil {
			a.open = make(map[asmKey]*[]byte)
		}
		b = a.alloc()
		*b = append((*b)[:0], f.Payload...)
		a.open[k] = b
		return nil, false, nil
	}
	if len(*b)+len(f.Payload) > max {
		a.drop(k, b)
		return nil, false, &MessageError{ID: f.ID, Type: f.Type, Reason: "message larger than the limit"}
	}
	*b = append(*b, f.Payload...)
	if !end {
		return nil, false, nil
	}
	delete(a.open, k)
	a.last = b
	return *b, true, nil
}

// Discard forgets the message in progress for (id, typ), if any: for example when
// the exchange was cancelled.
func (a *Assembler) Discard(id uint64, typ int32) {
	a.recycle()
	k := asmKey{id, typ}
	if b, ok := a.open[k]; ok {
		a.drop(k, b)
	}
}

// Open is the number of messages in progress.
func (a *Assembler) Open() int { return len(a.open) }

func (a *Assembler) drop(k asmKey, b *[]byte) {
	delete(a.open, k)
	a.put(b)
}

func (a *Assembler) recycle() {
	if a.last != nil {
		a.put(a.last)
		a.last = nil
	}
}

func (a *Assembler) alloc() *[]byte {
	if n := len(a.free); n > 0 {
		b := a.free[n-1]
		a.free = a.free[:n-1]
		return b
	}
	return new([]byte)
}

func (a *Assembler) put(b *[]byte) {
	if len(a.free) < asmFreeMax && cap(*b) <= DefaultMaxMessage {
		*b = (*b)[:0]
		a.free = append(a.free, b)
	}
}

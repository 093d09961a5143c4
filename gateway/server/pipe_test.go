package server

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// TestBodyPipeCarriesEveryByte: a writer mixing write and space/commit runs of
// random sizes and a reader taking random amounts, over many wraps of the ring,
// move every byte once and in order, and the end (io.EOF) comes after the last.
func TestBodyPipeCarriesEveryByte(t *testing.T) {
	p := newBodyPipe()
	body := make([]byte, 5*pipeSize+12345)
	for i := range body {
		body[i] = byte(rand.Uint32())
	}
	go func() {
		for rest := body; len(rest) > 0; {
			n := min(len(rest), 1+rand.IntN(100000))
			if rand.IntN(2) == 0 {
				if err := p.write(rest[:n]); err != nil {
					t.Error(err)
					return
				}
			} else {
				dst := p.space(n)
				n = copy(dst, rest[:n])
				p.commit(n)
			}
			rest = rest[n:]
		}
		p.end(io.EOF)
	}()
	var got []byte
	buf := make([]byte, 200000)
	for {
		n, err := p.Read(buf[:1+rand.IntN(len(buf))])
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("%d bytes out of %d in, not the same", len(got), len(body))
	}
}

// TestBodyPipeStop: Stop makes a Read blocked on an empty pipe and a write
// blocked on a full one return, with errPipeStopped; space then offers nothing.
func TestBodyPipeStop(t *testing.T) {
	p := newBodyPipe()
	read := make(chan error, 1)
	go func() {
		_, err := p.Read(make([]byte, 10))
		read <- err
	}()
	if err := p.write(make([]byte, pipeSize)); err != nil { // fills it (the reader may take some)
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() { wrote <- p.write(make([]byte, 2*pipeSize)) }() // cannot fit: blocks
	if err := <-read; err != nil {
		t.Fatalf("a read with bytes there: %v", err)
	}
	time.Sleep(10 * time.Millisecond) // let the write block (not required)
	p.Stop()
	if err := <-wrote; !errors.Is(err, errPipeStopped) {
		t.Fatalf("blocked write after Stop: %v", err)
	}
	if _, err := p.Read(make([]byte, 10)); !errors.Is(err, errPipeStopped) {
		t.Fatalf("Read after Stop: %v", err)
	}
	if dst := p.space(100); dst != nil {
		t.Fatalf("space after Stop: %d bytes", len(dst))
	}
}

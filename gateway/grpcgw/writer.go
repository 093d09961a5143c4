package grpcgw

import (
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/covetpy/covetpy/gateway/dispatch"
	"github.com/covetpy/covetpy/workerproto"
)

// callWriter is the ResponseWriter a gRPC call is served through: it hands
// the worker's gRPC answer on, translated for a gRPC-Web client, and turns
// every other answer (the middleware chain's 401 or 429, a worker's plain
// HTTP response) into a gRPC status, so that a gRPC client always gets one.
//
// Owned by the goroutine serving the call.
type callWriter struct {
	inner dispatch.ResponseWriter // the front end's
	mode  mode
	webCT []byte // a gRPC-Web client's content-type, for the answers the gateway makes

	started bool // a gRPC head went to inner: a status now goes as trailers
	ended   bool // the status went out: the response is complete
	drop    bool // an HTTP answer became a status: its body is dropped
	code    Code // the status sent, once ended
	hs      []workerproto.Header
	enc     []byte // base64 scratch (webText)
}

var nameContentType = []byte("content-type")

// field returns the value of the first field named name in hs, or nil.
func field(hs []workerproto.Header, name string) []byte {
	for i := range hs {
		if workerproto.NameIs(hs[i].Name, name) {
			return hs[i].Value
		}
	}
	return nil
}

// HTTPCode maps the HTTP status of an answer that is not gRPC's to the gRPC
// code a client gets (PROTOCOL.md 2.10).
func HTTPCode(status int) Code {
	switch status {
	case 400:
		return Internal
	case 401:
		return Unauthenticated
	case 403:
		return PermissionDenied
	case 404:
		return Unimplemented
	case 413, 429:
		return ResourceExhausted
	case 503:
		return Unavailable
	case 504:
		return DeadlineExceeded
	}
	return Unknown
}

// parseCode reads a grpc-status value; a missing or malformed one is
// UNKNOWN.
func parseCode(v []byte) Code {
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 {
		return Unknown
	}
	return Code(n)
}

// WriteHead implements dispatch.ResponseWriter.
func (w *callWriter) WriteHead(status int, headers []workerproto.Header, bodyLen int64) error {
	if status != 200 || classify(field(headers, "content-type")) != native {
		// Not a gRPC answer: its status becomes the call's, with the
		// HTTP reason as the message; its other fields (CORS, a
		// Retry-After, WWW-Authenticate) stay.
		w.drop = true
		return w.status(HTTPCode(status), http.StatusText(status), headers)
	}
	st := field(headers, "grpc-status")
	if st != nil && bodyLen == 0 {
		// A trailers-only answer (PROTOCOL.md 2.10: a RESP of body 0).
		if w.mode == native {
			w.ended, w.code = true, parseCode(st)
			return w.inner.WriteHead(status, headers, 0)
		}
		w.hs = w.hs[:0]
		var trailers []workerproto.Header
		for _, h := range headers {
			if workerproto.NameIs(h.Name, "grpc-status") || workerproto.NameIs(h.Name, "grpc-message") {
				trailers = append(trailers, h)
			} else if !workerproto.NameIs(h.Name, "content-type") && !workerproto.NameIs(h.Name, "content-length") {
				w.hs = append(w.hs, h)
			}
		}
		return w.webStatus(w.hs, trailers, parseCode(st))
	}
	if w.mode == native {
		w.started = true
		return w.inner.WriteHead(status, headers, bodyLen)
	}
	w.hs = w.hs[:0]
	for _, h := range headers {
		switch {
		case workerproto.NameIs(h.Name, "content-type"):
			h.Value = retype(h.Value, ctGRPC, webBase(w.mode))
		case workerproto.NameIs(h.Name, "content-length"):
			continue // the trailer message follows the body
		}
		w.hs = append(w.hs, h)
	}
	w.started = true
	return w.inner.WriteHead(status, w.hs, -1)
}

// WriteBody implements dispatch.ResponseWriter.
func (w *callWriter) WriteBody(p []byte) error {
	if w.drop || w.ended {
		return nil
	}
	if w.mode == webText {
		w.enc = base64.StdEncoding.AppendEncode(w.enc[:0], p)
		p = w.enc
	}
	return w.inner.WriteBody(p)
}

// WriteBodyv implements dispatch.ResponseWriter.
func (w *callWriter) WriteBodyv(ps [][]byte) error {
	if w.drop || w.ended {
		return nil
	}
	if w.mode == webText {
		// Each piece padded on its own: clients decode in 4-character
		// quanta, padding allowed mid-stream.
		w.enc = w.enc[:0]
		for _, p := range ps {
			w.enc = base64.StdEncoding.AppendEncode(w.enc, p)
		}
		return w.inner.WriteBody(w.enc)
	}
	return w.inner.WriteBodyv(ps)
}

// Flush implements dispatch.Flusher for a front end writer that buffers.
func (w *callWriter) Flush() error {
	if f, ok := w.inner.(dispatch.Flusher); ok && !w.drop {
		return f.Flush()
	}
	return nil
}

// WriteTrailers implements dispatch.TrailerWriter: the worker's status and
// trailing metadata, as HTTP trailers or gRPC-Web's trailer message.
func (w *callWriter) WriteTrailers(headers []workerproto.Header) error {
	if w.drop || w.ended {
		return nil
	}
	code := parseCode(field(headers, "grpc-status"))
	if w.mode != native {
		return w.webStatus(nil, headers, code)
	}
	w.ended, w.code = true, code
	tw, ok := w.inner.(dispatch.TrailerWriter)
	if !ok {
		return nil // Serve refuses native gRPC to such a writer
	}
	return tw.WriteTrailers(headers)
}

// status sends the gateway's own status for the call: a trailers-only
// answer (HTTP 200 with the status in its head; the fields of extra, but
// for content-type and content-length, kept) when no head has gone out, as
// trailers after the body otherwise.
func (w *callWriter) status(code Code, msg string, extra []workerproto.Header) error {
	if w.ended {
		return nil
	}
	status := StatusFields(nil, code, msg)
	if w.started {
		return w.WriteTrailers(status)
	}
	w.hs = w.hs[:0]
	for _, h := range extra {
		if !workerproto.NameIs(h.Name, "content-type") && !workerproto.NameIs(h.Name, "content-length") &&
			!workerproto.NameIs(h.Name, "content-encoding") && !workerproto.NameIs(h.Name, "grpc-status") &&
			!workerproto.NameIs(h.Name, "grpc-message") {
			w.hs = append(w.hs, h)
		}
	}
	if w.mode != native {
		return w.webStatus(w.hs, status, code)
	}
	w.hs = append(w.hs, workerproto.Header{Name: nameContentType, Value: []byte(ctGRPC)})
	w.hs = append(w.hs, status...)
	w.ended, w.code = true, code
	return w.inner.WriteHead(200, w.hs, 0)
}

// webStatus ends a gRPC-Web response with trailers as its trailer message,
// after a head of hs (without content-type and content-length) when none
// has gone out yet.
func (w *callWriter) webStatus(hs, trailers []workerproto.Header, code Code) error {
	w.ended, w.code = true, code
	frame := trailerFrame(trailers)
	if w.mode == webText {
		frame = base64.StdEncoding.AppendEncode(nil, frame)
	}
	if !w.started {
		w.started = true
		hs = append(hs, workerproto.Header{Name: nameContentType, Value: w.webCT})
		if err := w.inner.WriteHead(200, hs, int64(len(frame))); err != nil {
			return err
		}
	}
	return w.inner.WriteBody(frame)
}

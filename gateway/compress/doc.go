// Package compress is the gateway's response compression: gzip, br (brotli)
// and zstd, negotiated by the request's Accept-Encoding (RFC 9110 12.5.3) and
// applied by wrapping a dispatch.ResponseWriter.
//
// New compiles a Config (off when Config.Encodings is empty); per request,
// Compressor.Wrap returns a *Writer, or nil when the response is not to be
// compressed at all (a HEAD request, or a client that accepts none of the
// configured encodings). The Writer decides in WriteHead, from the status, the
// response's fields and its length, whether this body is compressed (the rules
// are in eligible and docs/security.md):
//
//   - a known-length body of up to bufferBytes is held, compressed whole and
//     sent with an exact Content-Length (or sent as it was, with no
//     Content-Encoding, when compressing did not make it smaller);
//   - a longer known-length body is compressed as it comes and sent without a
//     length (chunked in HTTP/1.1);
//   - a streamed body (bodyLen -1) is compressed and flushed piece by piece
//     (gzip's sync flush, brotli's and zstd's flush), so each WriteBody's bytes
//     can be decoded by the client before the next arrives.
//
// Answers with a file (dispatch.FileWriter) pass through uncompressed: a
// static file's precompressed siblings serve that purpose.
//
// Ownership: a Writer belongs to the goroutine that called Wrap (the one that
// calls dispatch.Backend.Serve) until Release. Encoders and buffers come from
// pools of the Compressor; Release gives them back, after which the Writer
// must not be used. Memory per compressing stream is bounded by the
// encoder's window (see newEncoder), bufferBytes for a held body, and sinkBytes
// of compressed output before it is handed to the inner writer.
package compress

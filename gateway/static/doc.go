// Package static is the gateway's file logic: the part of serving a file from
// disk that does not touch a socket. The front ends (gateway/server) use it
// for the routes of kind static (PROTOCOL.md 1.3), for the gateway's own
// static mounts (covet-gateway's static setting) and for a worker's RESP_FILE
// answer (PROTOCOL.md 3.6).
//
// A Root is one directory, opened once with os.OpenRoot: every file under it
// is opened through the Root, which refuses a name that would leave the
// directory, through ".." or a symbolic link pointing outside it (a link
// whose target stays inside is followed). Before that, Clean refuses what a
// request path must not name: a dot segment ("." or ".." in any spelling),
// an empty segment, an encoded slash (%2f), a backslash (raw or %5c), a NUL
// and malformed percent-encoding. A refused name and a missing one are both
// ErrNotFound: the client learns nothing about the disk.
//
// Open then picks the representation: a precompressed sibling (name.br,
// name.gz) when the request's Accept-Encoding takes it, else the file itself;
// a directory answers with its index.html when the Root was opened with
// index, and asks for a redirect to the name with a trailing slash when the
// name lacks one (ErrNeedSlash). Only regular files are served; a FIFO or a
// device is not found (and is opened non-blocking, so it never holds up the
// gateway).
//
// Evaluate decides the answer to a request for the chosen representation:
// the conditional requests of RFC 9110 13 (If-Match, If-Unmodified-Since,
// If-None-Match, If-Modified-Since, If-Range, in that order of precedence)
// and byte ranges (RFC 9110 14). One satisfiable range gives 206 with
// Content-Range; a range set none of whose ranges is satisfiable gives 416
// with "Content-Range: bytes */N"; a request with several ranges gets the
// whole representation (200), as RFC 9110 14.2 lets a server ignore Range;
// so does a malformed Range field. Validators are a strong ETag built from
// the file's size and modification time and Last-Modified.
package static

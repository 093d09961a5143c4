// Package dispatch connects the gateway's front ends to the Python workers.
//
// A [Dispatcher] holds, per app, a pool of worker [Session]s, and the live route
// table built from the manifests the workers sent in their HELLO. A front end looks a
// request up with [Dispatcher.Lookup] and hands it to [Dispatcher.Serve], which
// picks the least-loaded worker that has credit, waits in a bounded per-app queue if
// every worker is busy, writes the request into that worker's request ring and
// streams the answer from the response ring back to a [ResponseWriter].
//
// Routes come from the workers' manifests: while no app has registered, or an app
// has no live worker, Lookup answers a miss with a route whose Serve gives 503, not
// 404. An app the supervisor expects workers of ([Dispatcher.Expect]) that has lost
// them all keeps its routes, and its requests wait in its queue for a worker to come
// back, up to the queue deadline.
//
// Status conventions (ARCHITECTURE.md section 3): a worker that dies after it took
// the request off the ring gives 502; no live worker, a full queue or a queue wait
// past its deadline gives 503 (the front end adds Retry-After); a handler past its
// deadline gives 504 and a CANCEL frame. A request is retried on another worker only
// when the dead worker never took it off the ring, and that is known only once the
// worker can take nothing more: its process was reaped ([Session.Exited], called by
// the supervisor for a [Spawned] worker) or its control socket reached EOF (an
// [External] one). A session the gateway ends itself while the worker may live
// waits for that, at most exitWait; without it every call in flight gets 502, so no
// request runs twice. A cancelled context (the client went away) sends CANCEL to the
// worker.
//
// Ownership: each Session has one goroutine that reads its response ring (the only
// consumer) and one that reads its control socket. Request frames are written by the
// goroutines serving requests (the ring is many-producer). A call's response is
// copied out of shared memory by the ring reader into pooled 64 KiB chunks and
// written to the client by the goroutine that called Serve, all collected chunks in
// one vectored write, so a slow client never stalls the ring. What a slow client
// leaves in those chunks is bounded by the response window (PROTOCOL.md 2.7): the
// worker sends at most 2 MiB of body beyond what the gateway has granted back with
// WINDOW frames after writing it, and a worker that sends more loses its session.
// Written chunks go back to the pool before their bytes are granted back, so one
// response holds at most [MaxResponseHeld]; [HeldResponseBytes] counts what all
// responses hold, for the front end's budget on them.
// A request body (PROTOCOL.md 2.8) goes after the head: a whole one of at most
// the request window at once, on the Serve goroutine; a [BodyStream] (or a whole
// body over the window) through an upload goroutine (upload.go) that reads it as
// the worker grants room with REQ_WINDOW, at most [workerproto.RequestWindow]
// ahead of what the handler took, while Serve waits for the answer. A stream that
// fails ends with a REQ_BODY fragment flagged ERR|END, and Serve returns its error
// as a [*BodyError] if the response has not begun. Serve stops the upload, and
// waits for it, before it returns.
// A worker's EARLY_HINTS (PROTOCOL.md 3.5) are decoded by the ring reader and
// handed, before the head, to a ResponseWriter that implements [InterimWriter];
// other writers never see them. A worker's RESP_FILE (PROTOCOL.md 3.6), the whole
// answer in one frame, is copied out of the ring and handed to a ResponseWriter that
// implements [FileWriter], which sends the file itself; Serve answers
// [ErrNoFileWriter] (502) for another writer. Routes of kind [KindStatic] never reach
// Serve: the front ends answer them from disk.
// The reader spins before sleeping only while at most one call is open: under load
// the worker is the busy side, and a wakeup then collects a batch.
package dispatch

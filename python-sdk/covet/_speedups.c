/*
 * covet._speedups: the compiled core of the worker's data plane (optional).
 *
 * What it holds, each the twin of a pure-Python reference that stays the fallback
 * (COVET_NO_EXTENSIONS=1, or no C compiler when pip built the SDK):
 *
 *   Reader  the single consumer of one ring     (covet/_shmring.py, PyRingReader)
 *   Writer  the single producer of one ring     (covet/_shmring.py, PyRingWriter)
 *   decode_head(payload)  REQ_HEAD, 12 elements (covet/_head.py, decode_head_py)
 *   encode_response_head(status, headers, body)
 *                         RESP_HEAD, common form (covet/_payloads.py, encode_response_head_py)
 *
 * Memory ordering (workerproto/PROTOCOL.md 2.6) is C11's: a record's length is its
 * commit word, stored with release after every other byte of the record and loaded
 * with acquire before any of them; tail and head are stored with release and loaded
 * with acquire; the sleeping / producer_waiting handshakes (PROTOCOL.md 2.5) put a
 * sequentially consistent fence between the store of one side's flag or counter and
 * the load of the other's. So, unlike the pure-Python client, this one is correct on
 * weakly ordered CPUs (arm64) too.
 *
 * Everything read from shared memory is untrusted: a bad record raises the
 * RingCorrupt class covet._shmring registers with init_ring(), with the same reasons and
 * segment offsets as the Python reader. Payloads handed out are bytes copies.
 *
 * Lifetime: a Reader or Writer holds a buffer export of the segment's mmap, so the
 * mapping cannot go while it is in use; Segment.close() calls detach() on each ring
 * made from it first, after which every method raises ValueError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* PROTOCOL.md 2.1 - 2.3 (the same constants as covet/_shmring.py). */
#define CONTROL_SIZE 1024
#define CB_TAIL 0
#define CB_HEAD_CACHE 128
#define CB_HEAD 256
#define CB_CONSUMER_SLEEPING 384
#define CB_PRODUCER_WAITING 512
#define FRAME_HEADER 24
#define PAD 1
#define REQ_HEAD 16
#define BEGIN_END 0x3u
#define KNOWN_FLAGS 0xFu
#define MAX_TYPES 128
/* What covet/_accel.py expects: a module built from an older source is not used. */
#define API_VERSION 1

static PyObject *RingCorrupt;  /* covet._shmring.RingCorrupt(reason, offset) */
/* RequestHead: covet._head.RequestHead (a NamedTuple of 14), set by init_head() */
static PyObject *head_fallback; /* covet._head.decode_head_py */

static void
ring_corrupt(long long offset, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PyObject *reason = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    if (reason == NULL)
        return;
    if (RingCorrupt == NULL) {
        PyErr_SetObject(PyExc_RuntimeError, reason);
        Py_DECREF(reason);
        return;
    }
    PyObject *exc = PyObject_CallFunction(RingCorrupt, "OL", reason, offset);
    Py_DECREF(reason);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
}

/* Arguments of a METH_FASTCALL | METH_KEYWORDS method into out[0..n) (NULL where not
 * given): positional first, then by name. -1 with TypeError on a bad call. */
static int
parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
           const char *const *names, Py_ssize_t n, Py_ssize_t required, PyObject **out)
{
    if (nargs > n) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zd arguments (%zd given)", fname, n, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        out[i] = i < nargs ? args[i] : NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t i = 0;
        while (i < n && PyUnicode_CompareWithASCIIString(key, names[i]) != 0)
            i++;
        if (i == n || out[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected or repeated keyword argument %R", fname, key);
            return -1;
        }
        out[i] = args[nargs + k];
    }
    for (Py_ssize_t i = 0; i < required; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname, names[i]);
            return -1;
        }
    }
    return 0;
}

/* -- The ring geometry shared by Reader and Writer --------------------------------- */

typedef struct {
    PyObject_HEAD
    Py_buffer view;       /* export of the segment's mmap; view.obj NULL once detached */
    char *base;           /* the segment's first byte; NULL once detached */
    long long cb;         /* segment offset of the control block */
    long long data;       /* segment offset of the data area */
    uint64_t cap, mask;
    int64_t max_record;
    PyObject *peer;       /* the other side's doorbell: .ring() */
    PyObject *weakreflist;
    /* Reader */
    PyObject *on_head;    /* None, or on_head(id, RequestHead) for whole REQ_HEADs */
    uint64_t head, tail_seen;
    uint64_t allowed[MAX_TYPES / 64];
    /* Writer */
    uint64_t tail, head_cache;
} Ring;

#define U64(r, off) ((_Atomic uint64_t *)((r)->base + (r)->cb + (off)))
#define U32(r, off) ((_Atomic uint32_t *)((r)->base + (r)->cb + (off)))
#define REC(r, idx) ((r)->base + (r)->data + (idx))

static int
ring_attach(Ring *self, PyObject *mm, long long cb, long long cap, PyObject *peer)
{
    if (self->base != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ring already initialised");
        return -1;
    }
    if (cap < 4096 || (cap & (cap - 1)) != 0 || cb < 0) {
        PyErr_Format(PyExc_ValueError, "bad ring geometry: control block %lld, capacity %lld", cb, cap);
        return -1;
    }
    if (PyObject_GetBuffer(mm, &self->view, PyBUF_WRITABLE) < 0)
        return -1;
    if (self->view.len < cb + CONTROL_SIZE + cap) {
        PyBuffer_Release(&self->view);
        PyErr_Format(PyExc_ValueError, "segment of %zd bytes has no ring at %lld (capacity %lld)",
                     self->view.len, cb, cap);
        return -1;
    }
    self->base = self->view.buf;
    self->cb = cb;
    self->data = cb + CONTROL_SIZE;
    self->cap = (uint64_t)cap;
    self->mask = (uint64_t)cap - 1;
    self->max_record = cap / 8;
    Py_INCREF(peer);
    Py_XSETREF(self->peer, peer);
    return 0;
}

static int
ring_ok(Ring *self)
{
    if (self->base == NULL) {
        PyErr_SetString(PyExc_ValueError, "operation forbidden on released memoryview object (segment is closed)");
        return 0;
    }
    return 1;
}

static void
ring_release_view(Ring *self)
{
    self->base = NULL;
    if (self->view.obj != NULL)
        PyBuffer_Release(&self->view);
}

static PyObject *
ring_detach(Ring *self, PyObject *Py_UNUSED(ignored))
{
    ring_release_view(self);
    Py_RETURN_NONE;
}

static int
ring_traverse(Ring *self, visitproc visit, void *arg)
{
    Py_VISIT(self->peer);
    Py_VISIT(self->on_head);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int
ring_clear(Ring *self)
{
    Py_CLEAR(self->peer);
    Py_CLEAR(self->on_head);
    return 0;
}

static void
ring_dealloc(Ring *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    ring_release_view(self);
    ring_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int
check_counters(Ring *self, uint64_t head, uint64_t tail)
{
    if (!(head <= tail && tail <= head + self->cap)) {
        ring_corrupt(self->cb, "head %llu / tail %llu break head <= tail <= head + capacity",
                     (unsigned long long)head, (unsigned long long)tail);
        return -1;
    }
    return 0;
}

/* Full fence, then if the flag at control-block offset `flag` is set, clear it and
 * ring the peer's doorbell (PROTOCOL.md 2.5, the waker's side). Only the waker
 * clears the flag and the other side only sets it, so load-then-store is the swap. */
static int
fence_and_ring(Ring *self, int flag)
{
    atomic_thread_fence(memory_order_seq_cst);
    _Atomic uint32_t *f = U32(self, flag);
    if (atomic_load_explicit(f, memory_order_relaxed)) {
        atomic_store_explicit(f, 0, memory_order_relaxed);
        PyObject *r = PyObject_CallMethod(self->peer, "ring", NULL);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return 0;
}

static PyObject *
ring_get_capacity(Ring *self, void *c)
{
    return PyLong_FromUnsignedLongLong(self->cap);
}

static PyObject *
ring_get_max_payload(Ring *self, void *c)
{
    return PyLong_FromLongLong(self->max_record - FRAME_HEADER);
}

static PyObject *
ring_get_consumer_sleeping(Ring *self, void *c)
{
    if (!ring_ok(self))
        return NULL;
    return PyBool_FromLong(atomic_load_explicit(U32(self, CB_CONSUMER_SLEEPING), memory_order_relaxed) != 0);
}

static PyObject *fast_head(const unsigned char *buf, Py_ssize_t len);
static PyObject *RequestHead;

/* -- Reader ---------------------------------------------------------------------------- */

static int
reader_init(Ring *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"mm", "cb", "capacity", "peer", "allowed_types", NULL};
    PyObject *mm, *peer, *allowed;
    long long cb, cap;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OLLOO:Reader", kwlist, &mm, &cb, &cap, &peer, &allowed))
        return -1;
    memset(self->allowed, 0, sizeof self->allowed);
    PyObject *it = PyObject_GetIter(allowed);
    if (it == NULL)
        return -1;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        long t = PyLong_AsLong(item);
        Py_DECREF(item);
        if (t == -1 && PyErr_Occurred())
            break;
        if (t == PAD) {
            PyErr_SetString(PyExc_ValueError, "PAD is not a frame type");
            break;
        }
        if (t > 0 && t < MAX_TYPES)
            self->allowed[t >> 6] |= 1ull << (t & 63);
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return -1;
    if (ring_attach(self, mm, cb, cap, peer) < 0)
        return -1;
    self->head = atomic_load_explicit(U64(self, CB_HEAD), memory_order_acquire);
    self->tail_seen = atomic_load_explicit(U64(self, CB_TAIL), memory_order_acquire);
    if (check_counters(self, self->head, self->tail_seen) < 0) {
        ring_release_view(self);
        return -1;
    }
    return 0;
}

static inline int
allowed_type(Ring *self, int32_t typ)
{
    return typ > 0 && typ < MAX_TYPES && (self->allowed[typ >> 6] >> (typ & 63)) & 1;
}

static inline int32_t
committed_length(Ring *self, uint64_t idx)
{
    return atomic_load_explicit((_Atomic int32_t *)REC(self, idx), memory_order_acquire);
}

static PyObject *
reader_get_head(Ring *self, void *c)
{
    return PyLong_FromUnsignedLongLong(self->head);
}

static PyObject *
reader_pending(Ring *self, PyObject *Py_UNUSED(ignored))
{
    if (!ring_ok(self))
        return NULL;
    return PyBool_FromLong(committed_length(self, self->head & self->mask) != 0);
}

/* Zero the bytes of [head, pos), store head with release, then the producer_waiting
 * handshake. */
static int
reader_release(Ring *self, uint64_t head, uint64_t pos)
{
    if (!ring_ok(self))
        return -1;
    uint64_t idx = head & self->mask, todo = pos - head;
    while (todo) {
        uint64_t n = self->cap - idx;
        if (n > todo)
            n = todo;
        memset(REC(self, idx), 0, n);
        todo -= n;
        idx = (idx + n) & self->mask;
    }
    self->head = pos;
    atomic_store_explicit(U64(self, CB_HEAD), pos, memory_order_release);
    return fence_and_ring(self, CB_PRODUCER_WAITING);
}

static void
reader_reject(Ring *self, int32_t length, int32_t typ, uint64_t flags, uint64_t idx, long long off)
{
    if (length < FRAME_HEADER || length > self->max_record) {
        ring_corrupt(off, "record length %d outside 24..%lld", (int)length, (long long)self->max_record);
        return;
    }
    uint64_t size = ((uint64_t)length + 7) & ~7ull;
    if (idx + size > self->cap) {
        ring_corrupt(off, "record of %llu bytes at index %llu crosses the end of the buffer",
                     (unsigned long long)size, (unsigned long long)idx);
        return;
    }
    if (!allowed_type(self, typ)) {
        ring_corrupt(off, "frame type %d not allowed on this ring", (int)typ);
        return;
    }
    char hex[24];
    snprintf(hex, sizeof hex, "%llx", (unsigned long long)flags);
    ring_corrupt(off + 16, "flags/reserved word 0x%s has unknown bits", hex);
}

/* poll(handler, limit=256): the committed records, in order, to handler(type, id,
 * flags, payload bytes); PAD skipped; then release the batch (PROTOCOL.md 2.4). */
static PyObject *
reader_poll(Ring *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"handler", "limit"};
    PyObject *a[2];
    if (parse_args("poll", args, nargs, kwnames, names, 2, 1, a) < 0)
        return NULL;
    PyObject *handler = a[0];
    Py_ssize_t limit = 256;
    if (a[1] != NULL) {
        limit = PyLong_AsSsize_t(a[1]);
        if (limit == -1 && PyErr_Occurred())
            return NULL;
    }
    if (!ring_ok(self))
        return NULL;
    const uint64_t cap = self->cap, mask = self->mask;
    const uint64_t tail_room = cap - FRAME_HEADER;
    uint64_t tail = self->tail_seen;
    const uint64_t head = self->head;
    uint64_t pos = head;
    /* A batch covers at most one capacity: at head + capacity sit this batch's own
     * records, still unzeroed, which would read as committed. */
    const uint64_t stop = head + cap;
    Py_ssize_t n = 0;
    int failed = 0;
    while (n < limit && pos < stop) {
        uint64_t idx = pos & mask;
        long long off = self->data + (long long)idx;
        char *p = REC(self, idx);
        int32_t length = committed_length(self, idx);
        if (length == 0)
            break;
        int32_t typ;
        uint64_t rid = 0, flags = 0;
        memcpy(&typ, p + 4, 4);
        if (idx <= tail_room) {
            memcpy(&rid, p + 8, 8);
            memcpy(&flags, p + 16, 8); /* flags u32 + reserved u32 */
        }
        uint64_t size = ((uint64_t)(uint32_t)length + 7) & ~7ull;
        if (length < FRAME_HEADER || length > self->max_record || idx + size > cap ||
            !allowed_type(self, typ) || (flags & ~(uint64_t)KNOWN_FLAGS)) {
            if (typ != PAD) {
                reader_reject(self, length, typ, flags, idx, off);
                failed = 1;
                break;
            }
            if (length <= 0 || (uint64_t)length != cap - idx || length > self->max_record) {
                ring_corrupt(off, "PAD length %d at index %llu does not end the buffer",
                             (int)length, (unsigned long long)idx);
                failed = 1;
                break;
            }
            size = (uint64_t)length;
        }
        if (pos + size > tail) {
            tail = atomic_load_explicit(U64(self, CB_TAIL), memory_order_acquire);
            self->tail_seen = tail;
            if (pos + size > tail || tail - head > cap) {
                ring_corrupt(off, "committed record ends at %llu, beyond tail %llu",
                             (unsigned long long)(pos + size), (unsigned long long)tail);
                failed = 1;
                break;
            }
        }
        pos += size;
        if (typ == PAD)
            continue;
        n++;
        if (typ == REQ_HEAD && (flags & BEGIN_END) == BEGIN_END && self->on_head != NULL &&
            self->on_head != Py_None && RequestHead != NULL) {
            /* A whole request head: decoded here, straight from the ring. */
            PyObject *hd = fast_head((const unsigned char *)p + FRAME_HEADER, length - FRAME_HEADER);
            if (hd != NULL) {
                PyObject *call[2] = {PyLong_FromUnsignedLongLong(rid), hd};
                PyObject *r = call[0] ? PyObject_Vectorcall(self->on_head, call, 2, NULL) : NULL;
                Py_XDECREF(call[0]);
                Py_DECREF(hd);
                if (r == NULL) {
                    failed = 1;
                    break;
                }
                Py_DECREF(r);
                if (self->base == NULL) {
                    ring_ok(self);
                    return NULL;
                }
                continue;
            }
        }
        PyObject *call[4];
        call[0] = PyLong_FromLong(typ);
        call[1] = PyLong_FromUnsignedLongLong(rid);
        call[2] = PyLong_FromUnsignedLongLong(flags);
        call[3] = PyBytes_FromStringAndSize(p + FRAME_HEADER, length - FRAME_HEADER);
        PyObject *r = NULL;
        if (call[0] && call[1] && call[2] && call[3])
            r = PyObject_Vectorcall(handler, call, 4, NULL);
        for (int i = 0; i < 4; i++)
            Py_XDECREF(call[i]);
        if (r == NULL) {
            failed = 1;
            break;
        }
        Py_DECREF(r);
        if (self->base == NULL) { /* the handler closed the segment */
            ring_ok(self);
            return NULL;
        }
    }
    if (pos != head) {
        if (failed) {
            /* Release what was handed out, keeping the first error. */
            PyObject *et, *ev, *tb;
            PyErr_Fetch(&et, &ev, &tb);
            if (reader_release(self, head, pos) < 0) {
                Py_XDECREF(et);
                Py_XDECREF(ev);
                Py_XDECREF(tb);
                return NULL;
            }
            PyErr_Restore(et, ev, tb);
        } else if (reader_release(self, head, pos) < 0) {
            return NULL;
        }
    }
    if (failed)
        return NULL;
    return PyLong_FromSsize_t(n);
}

static inline uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static PyObject *
reader_spin(Ring *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"spin_ns"};
    PyObject *a[1];
    if (parse_args("spin", args, nargs, kwnames, names, 1, 0, a) < 0)
        return NULL;
    long long spin_ns = 50000;
    if (a[0] != NULL) {
        spin_ns = PyLong_AsLongLong(a[0]);
        if (spin_ns == -1 && PyErr_Occurred())
            return NULL;
    }
    if (!ring_ok(self))
        return NULL;
    if (committed_length(self, self->head & self->mask))
        Py_RETURN_TRUE;
    uint64_t deadline = now_ns() + (uint64_t)(spin_ns > 0 ? spin_ns : 0);
    while (now_ns() < deadline) {
        if (committed_length(self, self->head & self->mask))
            Py_RETURN_TRUE;
    }
    Py_RETURN_FALSE;
}

static PyObject *
reader_prepare_sleep(Ring *self, PyObject *Py_UNUSED(ignored))
{
    if (!ring_ok(self))
        return NULL;
    _Atomic uint32_t *f = U32(self, CB_CONSUMER_SLEEPING);
    atomic_store_explicit(f, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (committed_length(self, self->head & self->mask)) {
        atomic_store_explicit(f, 0, memory_order_relaxed);
        Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

static PyObject *
reader_end_sleep(Ring *self, PyObject *Py_UNUSED(ignored))
{
    if (!ring_ok(self))
        return NULL;
    atomic_store_explicit(U32(self, CB_CONSUMER_SLEEPING), 0, memory_order_relaxed);
    Py_RETURN_NONE;
}

static PyMethodDef reader_methods[] = {
    {"poll", (PyCFunction)(void (*)(void))reader_poll, METH_FASTCALL | METH_KEYWORDS,
     "poll(handler, limit=256) -> int: hand up to limit committed records to handler(type, id, flags, payload)"},
    {"pending", (PyCFunction)reader_pending, METH_NOARGS, "True if the record at head is committed"},
    {"spin", (PyCFunction)(void (*)(void))reader_spin, METH_FASTCALL | METH_KEYWORDS, "spin(spin_ns=50000) -> bool"},
    {"prepare_sleep", (PyCFunction)reader_prepare_sleep, METH_NOARGS,
     "store consumer_sleeping = 1, fence, re-poll; True if the caller may sleep"},
    {"end_sleep", (PyCFunction)reader_end_sleep, METH_NOARGS, "store consumer_sleeping = 0"},
    {"detach", (PyCFunction)ring_detach, METH_NOARGS, "release the segment's memory (Segment.close)"},
    {NULL},
};

/* The properties Reader and Writer share. */
#define RING_GETSET                                                                              \
    {"capacity", (getter)ring_get_capacity, NULL, "data bytes in this ring", NULL},                \
    {"max_payload", (getter)ring_get_max_payload, NULL, "largest payload of one record", NULL},   \
    {"consumer_sleeping", (getter)ring_get_consumer_sleeping, NULL, "the consumer_sleeping flag", NULL},

static PyGetSetDef reader_getset[] = {
    {"head", (getter)reader_get_head, NULL, "bytes released so far", NULL},
    RING_GETSET
    {NULL},
};

static PyMemberDef ring_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(Ring, weakreflist), READONLY},
    {NULL},
};

static PyMemberDef reader_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(Ring, weakreflist), READONLY},
    {"on_head", T_OBJECT, offsetof(Ring, on_head), 0,
     "None, or on_head(id, head): poll hands it each whole REQ_HEAD of the common form as a "
     "decoded RequestHead (decode_head's fast path) instead of handing the payload to the handler"},
    {NULL},
};

static PyType_Slot reader_slots[] = {
    {Py_tp_doc, "The single consumer of one ring (compiled; covet._shmring.RingReader)."},
    {Py_tp_init, reader_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, ring_dealloc},
    {Py_tp_traverse, ring_traverse},
    {Py_tp_clear, ring_clear},
    {Py_tp_methods, reader_methods},
    {Py_tp_getset, reader_getset},
    {Py_tp_members, reader_members},
    {0, NULL},
};

static PyType_Spec reader_spec = {
    "covet._speedups.Reader", sizeof(Ring), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, reader_slots,
};

/* -- Writer ---------------------------------------------------------------------------- */

static int
writer_init(Ring *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"mm", "cb", "capacity", "peer", NULL};
    PyObject *mm, *peer;
    long long cb, cap;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OLLO:Writer", kwlist, &mm, &cb, &cap, &peer))
        return -1;
    if (ring_attach(self, mm, cb, cap, peer) < 0)
        return -1;
    self->tail = atomic_load_explicit(U64(self, CB_TAIL), memory_order_acquire);
    self->head_cache = atomic_load_explicit(U64(self, CB_HEAD), memory_order_acquire);
    if (check_counters(self, self->head_cache, self->tail) < 0) {
        ring_release_view(self);
        return -1;
    }
    return 0;
}

static PyObject *
writer_get_tail(Ring *self, void *c)
{
    return PyLong_FromUnsignedLongLong(self->tail);
}

/* Bytes a record of `length` needs including any PAD to the wrap; 0 if they do not
 * fit, -1 with RingCorrupt set if the consumer's head is impossible. */
static int64_t
writer_claim(Ring *self, int64_t length)
{
    uint64_t size = ((uint64_t)length + 7) & ~7ull;
    uint64_t rest = self->cap - (self->tail & self->mask);
    if (size > rest)
        size += rest;
    uint64_t tail = self->tail;
    if (tail + size - self->head_cache > self->cap) {
        uint64_t head = atomic_load_explicit(U64(self, CB_HEAD), memory_order_acquire);
        if (!(self->head_cache <= head && head <= tail)) {
            ring_corrupt(self->cb + CB_HEAD, "head moved from %llu to %llu (tail %llu)",
                         (unsigned long long)self->head_cache, (unsigned long long)head,
                         (unsigned long long)tail);
            return -1;
        }
        self->head_cache = head;
        atomic_store_explicit(U64(self, CB_HEAD_CACHE), head, memory_order_relaxed);
        if (tail + size - head > self->cap)
            return 0;
    }
    return (int64_t)size;
}

static PyObject *
writer_wake(Ring *self, PyObject *Py_UNUSED(ignored))
{
    if (!ring_ok(self))
        return NULL;
    if (fence_and_ring(self, CB_CONSUMER_SLEEPING) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* try_write(type, id, flags, payload, wake=True) -> bool */
static PyObject *
writer_try_write(Ring *self, PyObject *const *fargs, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"typ", "rid", "flags", "payload", "wake"};
    PyObject *args[5];
    if (parse_args("try_write", fargs, nargs, kwnames, names, 5, 4, args) < 0)
        return NULL;
    int overflow = 0;
    long long typ = PyLong_AsLongLongAndOverflow(args[0], &overflow);
    if (typ == -1 && PyErr_Occurred())
        return NULL;
    if (overflow)
        typ = -1;
    unsigned long long rid = PyLong_AsUnsignedLongLong(args[1]);
    if (rid == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    long long flags = PyLong_AsLongLongAndOverflow(args[2], &overflow);
    if (flags == -1 && PyErr_Occurred())
        return NULL;
    if (overflow)
        flags = -1;
    int wake = 1;
    if (args[4] != NULL) {
        wake = PyObject_IsTrue(args[4]);
        if (wake < 0)
            return NULL;
    }
    if (!ring_ok(self))
        return NULL;
    Py_buffer buf;
    if (PyObject_GetBuffer(args[3], &buf, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    int64_t length = FRAME_HEADER + (int64_t)buf.len;
    if (length > self->max_record) {
        PyErr_Format(PyExc_ValueError, "payload of %zd bytes exceeds max_payload %lld", buf.len,
                     (long long)(self->max_record - FRAME_HEADER));
        goto fail;
    }
    if (flags & ~(long long)KNOWN_FLAGS) {
        char hex[24];
        snprintf(hex, sizeof hex, "%llx", (unsigned long long)flags);
        PyErr_Format(PyExc_ValueError, "unknown flag bits in 0x%s", hex);
        goto fail;
    }
    if (typ == PAD || typ <= 0 || typ >= (1ll << 31)) {
        PyErr_Format(PyExc_ValueError, "frame type %R cannot be written", args[0]);
        goto fail;
    }
    uint64_t tail = self->tail;
    uint64_t idx = tail & self->mask;
    uint64_t aligned = ((uint64_t)length + 7) & ~7ull;
    uint64_t size = aligned;
    if (aligned > self->cap - idx || tail + aligned - self->head_cache > self->cap) {
        int64_t s = writer_claim(self, length);
        if (s < 0)
            goto fail;
        if (s == 0) {
            PyBuffer_Release(&buf);
            Py_RETURN_FALSE;
        }
        size = (uint64_t)s;
    }
    uint64_t new_tail = tail + size;
    self->tail = new_tail;
    /* tail before the commit (PROTOCOL.md 2.2) */
    atomic_store_explicit(U64(self, CB_TAIL), new_tail, memory_order_release);
    if (size != aligned) {
        /* PAD to the end of the buffer, then the record at index 0. */
        char *pad = REC(self, idx);
        int32_t t = PAD;
        memcpy(pad + 4, &t, 4);
        atomic_store_explicit((_Atomic int32_t *)pad, (int32_t)(self->cap - idx), memory_order_release);
        idx = 0;
    }
    char *p = REC(self, idx);
    if (buf.len)
        memcpy(p + FRAME_HEADER, buf.buf, (size_t)buf.len);
    int32_t t32 = (int32_t)typ;
    uint64_t id64 = rid, fl64 = (uint64_t)flags; /* flags u32 + the zero reserved word */
    memcpy(p + 4, &t32, 4);
    memcpy(p + 8, &id64, 8);
    memcpy(p + 16, &fl64, 8);
    atomic_store_explicit((_Atomic int32_t *)p, (int32_t)length, memory_order_release);
    PyBuffer_Release(&buf);
    if (wake && fence_and_ring(self, CB_CONSUMER_SLEEPING) < 0)
        return NULL;
    Py_RETURN_TRUE;
fail:
    PyBuffer_Release(&buf);
    return NULL;
}

static PyObject *
writer_prepare_wait(Ring *self, PyObject *arg)
{
    long long length = PyLong_AsLongLong(arg);
    if (length == -1 && PyErr_Occurred())
        return NULL;
    if (!ring_ok(self))
        return NULL;
    atomic_store_explicit(U32(self, CB_PRODUCER_WAITING), 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    int64_t s = writer_claim(self, length);
    if (s < 0)
        return NULL;
    return PyBool_FromLong(s == 0);
}

static PyObject *
writer_free_space(Ring *self, PyObject *Py_UNUSED(ignored))
{
    if (!ring_ok(self))
        return NULL;
    uint64_t head = atomic_load_explicit(U64(self, CB_HEAD), memory_order_acquire);
    if (!(self->head_cache <= head && head <= self->tail)) {
        ring_corrupt(self->cb + CB_HEAD, "head moved from %llu to %llu (tail %llu)",
                     (unsigned long long)self->head_cache, (unsigned long long)head,
                     (unsigned long long)self->tail);
        return NULL;
    }
    self->head_cache = head;
    atomic_store_explicit(U64(self, CB_HEAD_CACHE), head, memory_order_relaxed);
    return PyLong_FromUnsignedLongLong(self->cap - (self->tail - head));
}

static PyMethodDef writer_methods[] = {
    {"free_space", (PyCFunction)writer_free_space, METH_NOARGS,
     "free_space() -> int: bytes the consumer has released that are not claimed (head loaded now)"},
    {"try_write", (PyCFunction)(void (*)(void))writer_try_write, METH_FASTCALL | METH_KEYWORDS,
     "try_write(type, id, flags, payload, wake=True) -> bool: write and commit one record"},
    {"wake", (PyCFunction)writer_wake, METH_NOARGS, "full fence, then ring the consumer if it sleeps"},
    {"prepare_wait", (PyCFunction)writer_prepare_wait, METH_O,
     "prepare_wait(length) -> bool: store producer_waiting, fence, recheck the space"},
    {"detach", (PyCFunction)ring_detach, METH_NOARGS, "release the segment's memory (Segment.close)"},
    {NULL},
};

static PyGetSetDef writer_getset[] = {
    {"tail", (getter)writer_get_tail, NULL, "bytes claimed so far", NULL},
    RING_GETSET
    {NULL},
};

static PyType_Slot writer_slots[] = {
    {Py_tp_doc, "The single producer of one ring (compiled; covet._shmring.RingWriter)."},
    {Py_tp_init, writer_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, ring_dealloc},
    {Py_tp_traverse, ring_traverse},
    {Py_tp_clear, ring_clear},
    {Py_tp_methods, writer_methods},
    {Py_tp_getset, writer_getset},
    {Py_tp_members, ring_members},
    {0, NULL},
};

static PyType_Spec writer_spec = {
    "covet._speedups.Writer", sizeof(Ring), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, writer_slots,
};

/* -- REQ_HEAD (PROTOCOL.md 3.1) ---------------------------------------------------------
 *
 * decode_head(payload) builds the RequestHead of the common form, a fixarray of 12
 * well-typed elements, straight from the MessagePack bytes. Anything else (13 or 14
 * elements, another array encoding, a wrong type, bad UTF-8, trailing bytes) goes to
 * the Python decoder, which accepts or names what is wrong: the fast path never
 * decides that a payload is malformed.
 */

typedef struct {
    const unsigned char *p, *end;
} Cursor;

/* A big-endian length of `width` bytes; -1 when the payload ends first. */
static int
take_be(Cursor *c, int width, size_t *n)
{
    if (c->end - c->p < width)
        return -1;
    size_t v = 0;
    for (int i = 0; i < width; i++)
        v = (v << 8) | c->p[i];
    c->p += width;
    *n = v;
    return 0;
}

/* A str (is_str) or bin element's bytes, in place: 0, or -1 when the next element is
 * not one or runs past the payload. */
static int
take_raw(Cursor *c, int is_str, const unsigned char **data, size_t *n)
{
    if (c->p >= c->end)
        return -1;
    unsigned char b = *c->p++;
    int width;
    if (is_str && (b & 0xe0) == 0xa0) {
        *n = b & 0x1f;
        width = 0;
    } else if (b == (is_str ? 0xd9 : 0xc4)) {
        width = 1;
    } else if (b == (is_str ? 0xda : 0xc5)) {
        width = 2;
    } else if (b == (is_str ? 0xdb : 0xc6)) {
        width = 4;
    } else {
        return -1;
    }
    if ((width && take_be(c, width, n) < 0) || (size_t)(c->end - c->p) < *n)
        return -1;
    *data = c->p;
    c->p += *n;
    return 0;
}

/* A str; NULL without an exception set when the next element is not one. */
static PyObject *
take_str(Cursor *c)
{
    const unsigned char *data;
    size_t n;
    if (take_raw(c, 1, &data, &n) < 0)
        return NULL;
    PyObject *s = PyUnicode_DecodeUTF8((const char *)data, (Py_ssize_t)n, NULL);
    if (s == NULL)
        PyErr_Clear();
    return s;
}

/* A bin as bytes; NULL when the next element is not one. */
static PyObject *
take_bin(Cursor *c)
{
    const unsigned char *data;
    size_t n;
    if (take_raw(c, 0, &data, &n) < 0)
        return NULL;
    return PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)n);
}

/* An array header: its length, or -1 when the next element is not an array. */
static long long
take_array(Cursor *c)
{
    if (c->p >= c->end)
        return -1;
    unsigned char b = *c->p++;
    size_t n;
    if ((b & 0xf0) == 0x90)
        return b & 0x0f;
    if ((b == 0xdc && take_be(c, 2, &n) == 0) || (b == 0xdd && take_be(c, 4, &n) == 0))
        return (long long)n;
    return -1;
}

/* An int that fits in int64; 0 on success, -1 when the next element is not one. */
static int
take_int(Cursor *c, int64_t *out)
{
    if (c->p >= c->end)
        return -1;
    unsigned char b = *c->p++;
    const unsigned char *q = c->p;
    size_t avail = (size_t)(c->end - c->p);
    if (b <= 0x7f) {
        *out = b;
        return 0;
    }
    if (b >= 0xe0) {
        *out = (int8_t)b;
        return 0;
    }
    uint64_t u = 0;
    size_t n;
    int is_signed;
    switch (b) {
    case 0xcc: n = 1; is_signed = 0; break;
    case 0xcd: n = 2; is_signed = 0; break;
    case 0xce: n = 4; is_signed = 0; break;
    case 0xcf: n = 8; is_signed = 0; break;
    case 0xd0: n = 1; is_signed = 1; break;
    case 0xd1: n = 2; is_signed = 1; break;
    case 0xd2: n = 4; is_signed = 1; break;
    case 0xd3: n = 8; is_signed = 1; break;
    default: return -1;
    }
    if (avail < n)
        return -1;
    for (size_t i = 0; i < n; i++)
        u = (u << 8) | q[i];
    c->p += n;
    if (is_signed) {
        int shift = (int)(64 - 8 * n);
        *out = (int64_t)(u << shift) >> shift; /* sign-extend */
    } else {
        if (u > (uint64_t)INT64_MAX)
            return -1;
        *out = (int64_t)u;
    }
    return 0;
}

/* A flat [str, (bin|str), ...] list of an even length; NULL when it is not one. */
static PyObject *
take_flat(Cursor *c, int values_are_bin)
{
    long long n = take_array(c);
    if (n < 0 || (n & 1) || n > (c->end - c->p))
        return NULL;
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (list == NULL) {
        PyErr_Clear();
        return NULL;
    }
    for (long long i = 0; i < n; i++) {
        PyObject *x = (i & 1) && values_are_bin ? take_bin(c) : take_str(c);
        if (x == NULL) {
            PyErr_Clear();
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, x);
    }
    return list;
}

/* The RequestHead for a 12-element REQ_HEAD; NULL (no exception) to fall back. */
static PyObject *
fast_head(const unsigned char *buf, Py_ssize_t len)
{
    Cursor c = {buf, buf + len};
    if (len < 1 || *c.p++ != 0x9c)
        return NULL;
    PyObject *items[14] = {NULL};
    int64_t body, timeout_ms;
    /* 0 method, 1 path, 2 query, 3 headers, 4 route, 5 params, 6 http_version,
     * 7 scheme, 8 client, 9 request_id, 10 body, 11 timeout_ms */
    if (!(items[0] = take_str(&c)) || !(items[1] = take_str(&c)) || !(items[2] = take_str(&c)) ||
        !(items[3] = take_flat(&c, 1)) || !(items[4] = take_str(&c)) || !(items[5] = take_flat(&c, 0)) ||
        !(items[6] = take_str(&c)) || !(items[7] = take_str(&c)) || !(items[8] = take_str(&c)) ||
        !(items[9] = take_str(&c)) || take_int(&c, &body) < 0 || take_int(&c, &timeout_ms) < 0 ||
        body < -1 || timeout_ms < 0 || c.p != c.end)
        goto fallback;
    if (!(items[10] = PyLong_FromLongLong(body)) || !(items[11] = PyLong_FromLongLong(timeout_ms)))
        goto fallback;
    PyTypeObject *tp = (PyTypeObject *)RequestHead;
    PyObject *head = tp->tp_alloc(tp, 14);
    if (head == NULL)
        goto fallback;
    items[12] = Py_NewRef(Py_None);
    items[13] = Py_NewRef(Py_None);
    for (int i = 0; i < 14; i++)
        PyTuple_SET_ITEM(head, i, items[i]);
    return head;
fallback:
    PyErr_Clear();
    for (int i = 0; i < 14; i++)
        Py_XDECREF(items[i]);
    return NULL;
}

static PyObject *
decode_head(PyObject *module, PyObject *payload)
{
    if (RequestHead == NULL || head_fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "covet._speedups.init_head() was not called");
        return NULL;
    }
    if (PyBytes_CheckExact(payload)) {
        PyObject *head = fast_head((const unsigned char *)PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload));
        if (head != NULL)
            return head;
    }
    return PyObject_CallOneArg(head_fallback, payload);
}

/* -- RESP_HEAD (PROTOCOL.md 3.2) ---------------------------------------------------------
 *
 * encode_response_head(status, headers, body) writes the common head itself: a list or
 * tuple of at most 1024 (str, bytes) pairs whose names are already lower-case HTTP
 * tokens of at most 256 bytes and whose values have no control character but HTAB and
 * are at most 64 KiB. Anything else (a name to lower-case, a bytearray value, an
 * iterator, a bad value) goes to the Python encoder, which converts or refuses it with
 * the message that names what is wrong. The bytes are msgpack-python's (smallest
 * encodings), so both encoders give the golden vectors byte for byte.
 */

#define MAX_RESPONSE_HEADERS 1024
#define MAX_HEADER_NAME 256
#define MAX_HEADER_VALUE (64 << 10)

static PyObject *resp_fallback; /* covet._payloads.encode_response_head_py */
static unsigned char tchar_lower[256]; /* 1 for the bytes of a lower-case token */
static unsigned char bad_value[256];   /* 1 for CTLs but HTAB, and DEL */

static void
init_tables(void)
{
    const char *t = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz";
    for (const char *c = t; *c; c++)
        tchar_lower[(unsigned char)*c] = 1;
    for (int i = 0; i < 0x20; i++)
        bad_value[i] = i != '\t';
    bad_value[0x7f] = 1;
}

typedef struct {
    unsigned char *buf;
    size_t len, cap;
    int on_stack;
} Out;

static int
out_reserve(Out *o, size_t n)
{
    if (o->len + n <= o->cap)
        return 0;
    size_t cap = o->cap * 2;
    while (cap < o->len + n)
        cap *= 2;
    unsigned char *b = o->on_stack ? PyMem_Malloc(cap) : PyMem_Realloc(o->buf, cap);
    if (b == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (o->on_stack)
        memcpy(b, o->buf, o->len);
    o->on_stack = 0;
    o->buf = b;
    o->cap = cap;
    return 0;
}

static void
put_be(Out *o, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--)
        o->buf[o->len++] = (unsigned char)(v >> (8 * i));
}

/* An int, smallest encoding (as msgpack-python packs it). */
static int
put_int(Out *o, int64_t v)
{
    if (out_reserve(o, 9) < 0)
        return -1;
    if (v >= 0) {
        if (v < 128) { o->buf[o->len++] = (unsigned char)v; }
        else if (v < 256) { o->buf[o->len++] = 0xcc; put_be(o, (uint64_t)v, 1); }
        else if (v < 65536) { o->buf[o->len++] = 0xcd; put_be(o, (uint64_t)v, 2); }
        else if (v < 4294967296LL) { o->buf[o->len++] = 0xce; put_be(o, (uint64_t)v, 4); }
        else { o->buf[o->len++] = 0xcf; put_be(o, (uint64_t)v, 8); }
    } else {
        if (v >= -32) { o->buf[o->len++] = (unsigned char)(int8_t)v; }
        else if (v >= -128) { o->buf[o->len++] = 0xd0; put_be(o, (uint64_t)v, 1); }
        else if (v >= -32768) { o->buf[o->len++] = 0xd1; put_be(o, (uint64_t)v, 2); }
        else if (v >= -2147483648LL) { o->buf[o->len++] = 0xd2; put_be(o, (uint64_t)v, 4); }
        else { o->buf[o->len++] = 0xd3; put_be(o, (uint64_t)v, 8); }
    }
    return 0;
}

/* A str (is_str) or bin header and its bytes. */
static int
put_raw(Out *o, const char *p, size_t n, int is_str)
{
    if (out_reserve(o, n + 5) < 0)
        return -1;
    if (is_str) {
        if (n < 32) { o->buf[o->len++] = (unsigned char)(0xa0 | n); }
        else if (n < 256) { o->buf[o->len++] = 0xd9; put_be(o, n, 1); }
        else if (n < 65536) { o->buf[o->len++] = 0xda; put_be(o, n, 2); }
        else { o->buf[o->len++] = 0xdb; put_be(o, n, 4); }
    } else {
        if (n < 256) { o->buf[o->len++] = 0xc4; put_be(o, n, 1); }
        else if (n < 65536) { o->buf[o->len++] = 0xc5; put_be(o, n, 2); }
        else { o->buf[o->len++] = 0xc6; put_be(o, n, 4); }
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return 0;
}

/* 1: encoded into o; 0: not the common form, let Python do it; -1: error. */
static int
fast_resp_head(Out *o, PyObject *status, PyObject *headers, PyObject *body)
{
    if (!PyLong_CheckExact(status) || !PyLong_CheckExact(body))
        return 0;
    int overflow;
    long long st = PyLong_AsLongLongAndOverflow(status, &overflow);
    if (overflow || st < 200 || st > 599)
        return 0;
    long long bl = PyLong_AsLongLongAndOverflow(body, &overflow);
    if (overflow || bl < -1)
        return 0;
    if (!PyList_CheckExact(headers) && !PyTuple_CheckExact(headers))
        return 0;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
    if (n > MAX_RESPONSE_HEADERS)
        return 0;
    PyObject **items = PySequence_Fast_ITEMS(headers);
    if (out_reserve(o, 8) < 0)
        return -1;
    o->buf[o->len++] = 0x93;
    if (put_int(o, st) < 0)
        return -1;
    size_t flat = 2 * (size_t)n;
    if (out_reserve(o, 3) < 0)
        return -1;
    if (flat < 16) { o->buf[o->len++] = (unsigned char)(0x90 | flat); }
    else { o->buf[o->len++] = 0xdc; put_be(o, flat, 2); }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = items[i];
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
            return 0;
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        if (!PyUnicode_CheckExact(name) || !PyUnicode_IS_ASCII(name) || !PyBytes_CheckExact(value))
            return 0;
        Py_ssize_t nl = PyUnicode_GET_LENGTH(name);
        const unsigned char *np = PyUnicode_1BYTE_DATA(name);
        if (nl < 1 || nl > MAX_HEADER_NAME)
            return 0;
        for (Py_ssize_t k = 0; k < nl; k++)
            if (!tchar_lower[np[k]])
                return 0;
        Py_ssize_t vl = PyBytes_GET_SIZE(value);
        const unsigned char *vp = (const unsigned char *)PyBytes_AS_STRING(value);
        if (vl > MAX_HEADER_VALUE)
            return 0;
        for (Py_ssize_t k = 0; k < vl; k++)
            if (bad_value[vp[k]])
                return 0;
        if (put_raw(o, (const char *)np, (size_t)nl, 1) < 0 || put_raw(o, (const char *)vp, (size_t)vl, 0) < 0)
            return -1;
    }
    return put_int(o, bl) < 0 ? -1 : 1;
}

static PyObject *
encode_response_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "encode_response_head(status, headers, body)");
        return NULL;
    }
    if (resp_fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "covet._speedups.init_payloads() was not called");
        return NULL;
    }
    unsigned char stack[512];
    Out o = {stack, 0, sizeof stack, 1};
    int r = fast_resp_head(&o, args[0], args[1], args[2]);
    PyObject *res = NULL;
    if (r > 0)
        res = PyBytes_FromStringAndSize((const char *)o.buf, (Py_ssize_t)o.len);
    if (!o.on_stack)
        PyMem_Free(o.buf);
    if (r == 0)
        return PyObject_Vectorcall(resp_fallback, args, 3, NULL);
    return res;
}

/* -- Module ------------------------------------------------------------------------------ */

static PyObject *
init_ring(PyObject *module, PyObject *corrupt)
{
    Py_XSETREF(RingCorrupt, Py_NewRef(corrupt));
    Py_RETURN_NONE;
}

static PyObject *
init_head(PyObject *module, PyObject *args)
{
    PyObject *head, *fallback;
    if (!PyArg_ParseTuple(args, "OO:init_head", &head, &fallback))
        return NULL;
    if (!PyType_Check(head) || !PyType_IsSubtype((PyTypeObject *)head, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "init_head: RequestHead must be a tuple subclass");
        return NULL;
    }
    Py_XSETREF(RequestHead, Py_NewRef(head));
    Py_XSETREF(head_fallback, Py_NewRef(fallback));
    Py_RETURN_NONE;
}

static PyObject *
init_payloads(PyObject *module, PyObject *fallback)
{
    Py_XSETREF(resp_fallback, Py_NewRef(fallback));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"init_payloads", init_payloads, METH_O,
     "init_payloads(fallback): the Python RESP_HEAD encoder encode_response_head falls back to"},
    {"encode_response_head", (PyCFunction)(void (*)(void))encode_response_head, METH_FASTCALL,
     "encode_response_head(status, headers, body) -> bytes: the common head here, anything else by the fallback"},
    {"init_ring", init_ring, METH_O, "init_ring(RingCorrupt): the class Reader and Writer raise"},
    {"init_head", init_head, METH_VARARGS,
     "init_head(RequestHead, fallback): the class decode_head builds and the Python decoder it falls back to"},
    {"decode_head", decode_head, METH_O,
     "decode_head(payload) -> RequestHead: the 12-element form here, anything else by the fallback"},
    {NULL},
};

static int
module_exec(PyObject *m)
{
    init_tables();
    if (PyModule_AddIntConstant(m, "API_VERSION", API_VERSION) < 0)
        return -1;
    PyObject *reader = PyType_FromModuleAndSpec(m, &reader_spec, NULL);
    if (reader == NULL || PyModule_AddObjectRef(m, "Reader", reader) < 0) {
        Py_XDECREF(reader);
        return -1;
    }
    Py_DECREF(reader);
    PyObject *writer = PyType_FromModuleAndSpec(m, &writer_spec, NULL);
    if (writer == NULL || PyModule_AddObjectRef(m, "Writer", writer) < 0) {
        Py_XDECREF(writer);
        return -1;
    }
    Py_DECREF(writer);
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "covet._speedups",
    "The compiled core of the worker's data plane: ring reader and writer with C11 atomics, "
    "and the REQ_HEAD decoder (the pure-Python modules are the reference and the fallback).",
    0, module_methods, module_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&module_def);
}

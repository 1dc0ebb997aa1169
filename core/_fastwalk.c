/* dicomwire._fastwalk: the walk of dicomwire.fastpath over a capture's
 * records (classic pcap records, pcapng Enhanced Packet Blocks), compiled.
 * Optional: when it is not built (no compiler, no Python headers) or
 * DICOMWIRE_PURE is set, FastPath runs its Python loop, which this file
 * mirrors (FastPath._loop). tests/test_fastwalk.py runs both on the same
 * captures and compares every result; a change to one is made to the
 * other in the same commit, and VERSION follows
 * dicomwire.fastpath.EXT_VERSION.
 *
 * Done here, per record: the record header (a pcapng block's checks, its
 * interface's clock, its options handed to Python); the plain-segment check
 * (Ethernet, IPv4 without options or fragments, TCP ACK without SYN, FIN or
 * RST, a window, headers inside the captured bytes); a burst's next
 * segment; FastPath._segment's in-order tests, and what it does for a bare
 * ACK (counters) and for a payload that fits an open lane (a burst starts
 * with it); FastPath._burst_end with Direction.advance; IPv4 that is not
 * TCP (counted). Called back: FastPath._segment for other payloads of known
 * flows, and the general path, past its link decode (``feed``) for TCP
 * segments whose headers were read here, else whole (``general``).
 *
 * Also here: record(), a --dask worker's stdout write as an event
 * (dicomwire.handover.Recorder.write, which tests/test_outbox.py runs
 * beside it), and count_file(), the frame count of dicomwire.capcount.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>

#if PY_SSIZE_T_MAX < 0x7FFFFFFFFFFFFFFF
/* Lengths of 32 bits read from the file are added to offsets unchecked: a
 * 32-bit Py_ssize_t (x32) could wrap. setup.py's build is optional: the
 * install goes on without this module and the Python walk runs. */
#error "dicomwire._fastwalk needs a 64-bit Py_ssize_t"
#endif

#define VERSION 8
#define IGNORED (1LL << 62)   /* dicomwire.fastpath.IGNORED */
#define MASK 0xFFFFFFFFu

static PyObject *s_dirs, *s_expect, *s_holes, *s_last_frame, *s_last_ts, *s_frames, *s_ack,
    *s_lane, *s_non_tcp, *s_next_off, *s_next_seq, *s_history, *s_hist_bytes, *s_lane_parts,
    *s_closed, *s_dissector, *s_sniff, *s_lane_granted, *s_isn, *s_synack, *s_fin,
    *s_fin_off, *s_frame, *s_stream, *s_first_frame, *s_id, *s_limit, *s_flush;

static inline uint32_t rd32(const unsigned char *p, int big)
{
    if (big)
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static inline unsigned be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }

/* Attributes of the walk's objects (Stream, Direction: classes with
 * __slots__) read and set in their slots, as a member descriptor would
 * (PyObject_GetAttr's lookup costs more than the rest of a bare ACK's
 * work). Learnt per (type, name) the first time; anything else (a type
 * with its own getattr, a name that is no slot, a slot not set) takes the
 * generic path. */
typedef struct {
    PyObject *name;                   /* interned, kept alive by its s_ global */
    PyTypeObject *type;               /* a strong reference */
    Py_ssize_t offset;
} Slot;
static Slot slots[64];

static Slot *slot_of(PyObject *obj, PyObject *name)
{
    Slot *s = &slots[((uintptr_t)name >> 4) & 63];
    PyTypeObject *t = Py_TYPE(obj);
    if (s->name == name && s->type == t)
        return s;
    if (t->tp_getattro != PyObject_GenericGetAttr || t->tp_setattro != PyObject_GenericSetAttr)
        return NULL;
    PyObject *d = _PyType_Lookup(t, name);               /* borrowed */
    if (d == NULL || Py_TYPE(d) != &PyMemberDescr_Type)
        return NULL;
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    if (m->type != T_OBJECT_EX || (m->flags & READONLY))
        return NULL;
    Py_INCREF(t);
    Py_XDECREF(s->type);
    s->name = name;
    s->type = t;
    s->offset = m->offset;
    return s;
}

/* obj.name: a new reference, or NULL with an error set */
static PyObject *aget(PyObject *obj, PyObject *name)
{
    Slot *s = slot_of(obj, name);
    PyObject *v = s == NULL ? NULL : *(PyObject **)((char *)obj + s->offset);
    if (v == NULL)
        return PyObject_GetAttr(obj, name);
    Py_INCREF(v);
    return v;
}

/* obj.name = value (borrowed); 0, or -1 with an error set */
static int aset(PyObject *obj, PyObject *name, PyObject *value)
{
    Slot *s = slot_of(obj, name);
    if (s == NULL)
        return PyObject_SetAttr(obj, name, value);
    PyObject **at = (PyObject **)((char *)obj + s->offset), *old = *at;
    Py_INCREF(value);
    *at = value;
    Py_XDECREF(old);
    return 0;
}

/* obj.name = value (a new reference, consumed; NULL: an error pending) */
static int set_new(PyObject *obj, PyObject *name, PyObject *value)
{
    if (value == NULL)
        return -1;
    int r = aset(obj, name, value);
    Py_DECREF(value);
    return r;
}

/* obj.name += n */
static int add_ll(PyObject *obj, PyObject *name, long long n)
{
    PyObject *v = aget(obj, name), *d = NULL, *w = NULL;
    if (v != NULL && (d = PyLong_FromLongLong(n)) != NULL)
        w = PyNumber_Add(v, d);
    Py_XDECREF(v);
    Py_XDECREF(d);
    return set_new(obj, name, w);
}

static int set_ll(PyObject *obj, PyObject *name, long long x)
{
    return set_new(obj, name, PyLong_FromLongLong(x));
}

/* An int attribute that fits 64 bits: 1 (in *out), 0 (None or too big), -1 error. */
static int get_ll(PyObject *obj, PyObject *name, long long *out)
{
    PyObject *v = aget(obj, name);
    if (v == NULL)
        return -1;
    int r = 0;
    if (PyLong_Check(v)) {
        int overflow;
        *out = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (*out == -1 && PyErr_Occurred())
            r = -1;
        else
            r = !overflow;
    }
    Py_DECREF(v);
    return r;
}

/* bool(obj.name): 1, 0, or -1 on an error */
static int truth(PyObject *obj, PyObject *name)
{
    PyObject *v = aget(obj, name);
    int r = v == NULL ? -1 : PyObject_IsTrue(v);
    Py_XDECREF(v);
    return r;
}

/* stream.dirs[d] of a flow entry (stream, d): a new reference, or NULL. */
static PyObject *direction(PyObject *hit, PyObject **stream)
{
    if (!PyTuple_Check(hit) || PyTuple_GET_SIZE(hit) < 2) {    /* (stream, d[, n]) */
        PyErr_SetString(PyExc_TypeError, "flow entry is not (stream, direction)");
        return NULL;
    }
    *stream = PyTuple_GET_ITEM(hit, 0);
    PyObject *dirs = aget(*stream, s_dirs);
    if (dirs == NULL)
        return NULL;
    PyObject *d = PyTuple_GET_ITEM(hit, 1), *dr;
    long i = PyLong_CheckExact(d) ? PyLong_AsLong(d) : -1;
    if (i == -1)
        PyErr_Clear();
    if (PyTuple_CheckExact(dirs) && PyTuple_GET_SIZE(dirs) == 2 && (i == 0 || i == 1)) {
        dr = PyTuple_GET_ITEM(dirs, i);
        Py_INCREF(dr);
    } else {
        dr = PyObject_GetItem(dirs, d);
    }
    Py_DECREF(dirs);
    return dr;
}

/* The flow table's entry (borrowed), stream and direction (a new reference)
 * of the flow `key` (12 bytes: addresses and ports): 1 found, 0 not a flow
 * the table holds, -1 error. */
static int known_flow(PyObject *flows, const unsigned char *key, PyObject **entry,
                      PyObject **stream, PyObject **dr)
{
    PyObject *k = PyBytes_FromStringAndSize((const char *)key, 12);
    if (k == NULL)
        return -1;
    PyObject *hit = PyDict_GetItemWithError(flows, k);
    Py_DECREF(k);
    if (hit == NULL)
        return PyErr_Occurred() ? -1 : 0;
    *entry = hit;
    *dr = direction(hit, stream);
    return *dr == NULL ? -1 : 1;
}

/* FastPath._segment for a bare ACK (no payload), in order or after the
 * stream's close: 1 taken (its True), 0 for the general path (its False),
 * -1 error. */
static int bare_ack(PyObject *flows, const unsigned char *key, uint32_t seq, uint32_t ack,
                    long long number, long long ts)
{
    PyObject *hit, *stream, *dr;
    int found = known_flow(flows, key, &hit, &stream, &dr);
    if (found <= 0)
        return found;
    long long expect;
    int r = get_ll(dr, s_expect, &expect), take = 0;
    if (r == 1 && (uint64_t)expect == seq) {        /* in order, nothing held */
        r = truth(stream, s_holes);
        take = r == 0;
    } else if (r == 0) {                            /* an ACK after the close: counters only */
        r = truth(stream, s_closed);
        take = r == 1;
    }
    if (r >= 0 && take) {
        PyObject *a = PyLong_FromUnsignedLong(ack);
        r = (a == NULL || set_ll(stream, s_last_frame, number) < 0
             || set_ll(stream, s_last_ts, ts) < 0 || add_ll(dr, s_frames, 1) < 0
             || aset(dr, s_ack, a) < 0) ? -1 : 1;
        Py_XDECREF(a);
    } else if (r >= 0) {
        r = 0;
    }
    Py_DECREF(dr);
    return r;
}

/* FastPath._control: a SYN-ACK or FIN (with ACK, no payload) of a known
 * flow, the stream open and nothing held; the SYN-ACK its direction's first
 * segment, the FIN in order and the first of the two. 1 taken (as the
 * general path would take it), 0 for the general path, -1 error. */
static int control(PyObject *flows, const unsigned char *key, uint32_t seq, uint32_t ack,
                   unsigned flags, long long number, long long ts)
{
    PyObject *hit, *stream, *dr, *fin = NULL;
    int found = known_flow(flows, key, &hit, &stream, &dr);
    if (found <= 0)
        return found;
    long d = PyLong_AsLong(PyTuple_GET_ITEM(hit, 1)), r = d == -1 && PyErr_Occurred() ? -1 : 0;
    int closed = r < 0 ? -1 : truth(stream, s_closed);
    int holes = closed != 0 ? closed : truth(stream, s_holes);
    if (holes != 0) {
        r = holes < 0 ? -1 : 0;
        goto done;
    }
    if (flags & 0x02) {                           /* SYN-ACK */
        PyObject *isn = aget(dr, s_isn);
        PyObject *ns = isn == NULL ? NULL : aget(dr, s_next_seq);
        int first = ns != NULL && isn == Py_None && ns == Py_None;
        Py_XDECREF(isn);
        Py_XDECREF(ns);
        if (ns == NULL || !first) {
            r = ns == NULL ? -1 : 0;
            goto done;
        }
        PyObject *next = PyLong_FromUnsignedLong((seq + 1) & MASK);
        r = next == NULL || aset(stream, s_synack, Py_True) < 0
            || set_new(dr, s_isn, PyLong_FromUnsignedLong(seq)) < 0
            || aset(dr, s_next_seq, next) < 0
            || aset(dr, s_expect, next) < 0 ? -1 : 1;
        Py_XDECREF(next);
    } else {                                      /* FIN */
        long long expect;
        int e = get_ll(dr, s_expect, &expect);
        fin = e == 1 && (uint64_t)expect == seq ? aget(stream, s_fin) : NULL;
        if (fin == NULL) {
            r = e < 0 || (e == 1 && (uint64_t)expect == seq) ? -1 : 0;
            goto done;
        }
        PyObject *other = PySequence_GetItem(fin, 1 - d);
        int o = other == NULL ? -1 : PyObject_IsTrue(other);
        Py_XDECREF(other);
        if (o != 0) {
            r = o < 0 ? -1 : 0;               /* the second FIN closes: the general path */
            goto done;
        }
        PyObject *off = aget(dr, s_next_off);
        r = off == NULL || set_new(dr, s_fin_off, off) < 0
            || PySequence_SetItem(fin, d, Py_True) < 0
            || aset(dr, s_expect, Py_None) < 0 ? -1 : 1;
    }
    if (r == 1) {
        PyObject *a = PyLong_FromUnsignedLong(ack);
        r = (a == NULL || set_ll(stream, s_last_frame, number) < 0
             || set_ll(stream, s_last_ts, ts) < 0 || add_ll(dr, s_frames, 1) < 0
             || aset(dr, s_ack, a) < 0) ? -1 : 1;
        Py_XDECREF(a);
    }
done:
    Py_XDECREF(fin);
    Py_DECREF(dr);
    return (int)r;
}

/* A payload of an ignored direction (its lane's parts are dropped): what
 * its retransmission history needs of a view of the capture (len, slices,
 * the buffer), for a fraction of a memoryview's cost. */
typedef struct {
    PyObject_HEAD
    PyObject *view;                   /* the walk's buffer or view of it */
    Py_ssize_t start, len;
} Part;

static void part_dealloc(Part *p)
{
    Py_DECREF(p->view);
    PyObject_Free(p);
}

static Py_ssize_t part_length(Part *p) { return p->len; }

static PyObject *part_subscript(Part *p, PyObject *key)
{
    Py_ssize_t start, stop, step;
    if (PySlice_Check(key) && PySlice_Unpack(key, &start, &stop, &step) == 0 && step == 1) {
        PySlice_AdjustIndices(p->len, &start, &stop, step);
        return PySequence_GetSlice(p->view, p->start + start, p->start + (stop > start ? stop : start));
    }
    PyErr_Clear();
    PyObject *whole = PySequence_GetSlice(p->view, p->start, p->start + p->len);
    if (whole == NULL)
        return NULL;
    PyObject *r = PyObject_GetItem(whole, key);
    Py_DECREF(whole);
    return r;
}

static int part_getbuffer(Part *p, Py_buffer *b, int flags)
{
    Py_buffer base;                   /* p->view keeps the memory (and its export) alive */
    if (PyObject_GetBuffer(p->view, &base, PyBUF_SIMPLE) < 0)
        return -1;
    char *at = (char *)base.buf + p->start;
    PyBuffer_Release(&base);
    return PyBuffer_FillInfo(b, (PyObject *)p, at, p->len, 1, flags);
}

static PyMappingMethods part_mapping = {(lenfunc)part_length, (binaryfunc)part_subscript, NULL};
static PySequenceMethods part_sequence = {(lenfunc)part_length};
static PyBufferProcs part_buffer = {(getbufferproc)part_getbuffer, NULL};

static PyTypeObject PartType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dicomwire._fastwalk.Part",
    .tp_basicsize = sizeof(Part),
    .tp_dealloc = (destructor)part_dealloc,
    .tp_as_sequence = &part_sequence,
    .tp_as_mapping = &part_mapping,
    .tp_as_buffer = &part_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A payload of an ignored direction: a span of the capture's buffer.",
};

static PyObject *new_part(PyObject *view, Py_ssize_t start, Py_ssize_t len)
{
    Part *p = PyObject_New(Part, &PartType);
    if (p == NULL)
        return NULL;
    Py_INCREF(view);
    p->view = view;
    p->start = start;
    p->len = len;
    return (PyObject *)p;
}

/* How records are read: classic pcap (one link type, ts = sec * 1e9 + frac
 * * mult) or pcapng Enhanced Packet Blocks (per interface: ts = ((ticks *
 * mult) >> shift) + add, as dicomwire.pcapng_reader's clocks). */
typedef struct {
    long long mult, add;
    int shift, ok;                    /* ok: 0 for an interface the walk leaves (mult None) */
    long linktype;
    PyObject *iface;                  /* borrowed from the interface list */
} Clock;

typedef struct {
    int ng, big;
    Py_ssize_t size, max_record;
    long long mult;                   /* pcap */
    long linktype;                    /* pcap */
    PyObject *iface;                  /* pcap */
    Clock *clocks;                    /* pcapng */
    Py_ssize_t nif;
    PyObject *options;                /* pcapng: options(number, buf, at, end) */
} Layout;

/* The state of a walk: the loop's locals. */
typedef struct {
    PyObject *burst, *parts;          /* the burst's flow entry and parts list, or NULL */
    unsigned char key[12];
    int has_expect, ignored;          /* ignored: the lane drops its parts */
    long long expect, lane, taken, last_n, number, truncated, ts, last_ts;
    Py_ssize_t last, pos;
    int handoff;                      /* stopped at a time beyond 64 bits: Python goes on */
    uint32_t ack_last;
    int has_ts;
    long long non_tcp;                /* IPv4 frames not TCP, for stats.non_tcp */
} Walk;

/* The segment (payload q+at:q+e of the record at rec) goes into the burst. */
static int take(Walk *w, PyObject *view, Py_ssize_t q, Py_ssize_t at, Py_ssize_t e,
                Py_ssize_t rec, uint32_t ack, long long ts)
{
    w->last_ts = ts;
    Py_ssize_t n = e - at;
    w->lane -= n;
    w->expect = (w->expect + n) & MASK;
    PyObject *part = w->ignored ? new_part(view, q + at, n) : PySequence_GetSlice(view, q + at, q + e);
    if (part == NULL)
        return -1;
    int bad = PyList_Append(w->parts, part);
    Py_DECREF(part);
    if (bad)
        return -1;
    w->taken += n;
    w->last = rec;
    w->last_n = w->number;
    w->ack_last = ack;
    return 0;
}

/* The stream undecided, and no plugin would take it on this payload, its
 * first (Stream.sniff: the bytes a client's first payload may start with):
 * 1, else 0; -1 on an error. */
static int declines(PyObject *stream, PyObject *d, unsigned char first)
{
    PyObject *dis = aget(stream, s_dissector);
    if (dis == NULL)
        return -1;
    Py_DECREF(dis);                   /* (compared by identity only) */
    if (dis != Py_None)
        return 0;
    PyObject *sniff = aget(stream, s_sniff);
    if (sniff == NULL)
        return -1;
    int r = 0;
    if (PyBytes_Check(sniff)) {
        r = PyObject_IsTrue(d);
        if (r == 0)
            r = memchr(PyBytes_AS_STRING(sniff), first, PyBytes_GET_SIZE(sniff)) == NULL;
    }
    Py_DECREF(sniff);
    return r;
}

/* dicomwire.fastpath.decline: not dissected, both directions in lanes
 * that drop their parts (Direction.ignore); direction d's room counted
 * after the payload of n bytes that declined it (FastPath._segment). */
static int decline(PyObject *stream, PyObject *discard, PyObject *d, Py_ssize_t n)
{
    long long di = PyLong_AsLongLong(d);
    if (di == -1 && PyErr_Occurred())
        return -1;
    if (aset(stream, s_dissector, Py_False) < 0)
        return -1;
    PyObject *dirs = aget(stream, s_dirs);
    if (dirs == NULL)
        return -1;
    int bad = 0;
    for (Py_ssize_t i = 0; !bad && i < 2; i++) {
        PyObject *dr = PySequence_GetItem(dirs, i);
        bad = dr == NULL || set_ll(dr, s_lane, IGNORED + (i == di ? n : 0)) < 0
              || set_ll(dr, s_lane_granted, IGNORED) < 0
              || aset(dr, s_lane_parts, discard) < 0;
        Py_XDECREF(dr);
    }
    Py_DECREF(dirs);
    return bad ? -1 : 0;
}

/* FastPath._segment's first tests for a payload of n bytes (``first`` its
 * first byte): its flow entry (borrowed) if it is the next in-order one of
 * a known flow and fits the lane open in its direction, or the stream is
 * declined on it (then a lane is open: decline above) (a burst starts with
 * it), else NULL (ask _segment); -1 in *err on an error. */
static PyObject *fits(PyObject *flows, const unsigned char *key, uint32_t seq, Py_ssize_t n,
                      unsigned char first, PyObject *discard, int *err)
{
    PyObject *k = PyBytes_FromStringAndSize((const char *)key, 12);
    if (k == NULL)
        return *err = -1, NULL;
    PyObject *hit = PyDict_GetItemWithError(flows, k);
    Py_DECREF(k);
    if (hit == NULL)
        return *err = PyErr_Occurred() ? -1 : 0, NULL;
    PyObject *stream, *dr = direction(hit, &stream);
    if (dr == NULL)
        return *err = -1, NULL;
    long long expect, lane;
    int r = get_ll(dr, s_expect, &expect);
    int l = r == 1 ? get_ll(dr, s_lane, &lane) : 0;
    Py_DECREF(dr);
    if (r < 0 || l < 0)
        return *err = -1, NULL;
    if (r == 0 || l == 0 || (uint64_t)expect != seq)
        return NULL;
    int h = truth(stream, s_holes);
    if (h)
        return *err = h < 0 ? -1 : 0, NULL;
    if (0 < n && n < lane)
        return hit;
    int no = n > 0 ? declines(stream, PyTuple_GET_ITEM(hit, 1), first) : 0;
    if (no == 1 && decline(stream, discard, PyTuple_GET_ITEM(hit, 1), n) < 0)
        no = -1;
    if (no < 0)
        *err = -1;
    return no == 1 ? hit : NULL;
}

/* What the general path does with a TCP segment whose headers the walk
 * read already (Ethernet, IPv4 without options or fragments, TCP inside
 * the captured bytes): the link decoder's segment tuple, to ``feed``. */
static int feed_segment(PyObject *feed, const unsigned char *f, Py_ssize_t at, Py_ssize_t e,
                        uint32_t seq, uint32_t ack, unsigned doff, unsigned flags,
                        unsigned win, long long number, long long ts)
{
    unsigned fl = flags | (doff & 1) << 8 | (win == 0) << 9;
    PyObject *seg = Py_BuildValue("(y#kkIy#i)", (const char *)f + 26, (Py_ssize_t)12,
                                  (unsigned long)seq, (unsigned long)ack, fl,
                                  (const char *)f + at, e - at, 0);
    if (seg == NULL)
        return -1;
    PyObject *r = PyObject_CallFunction(feed, "LLO", number, ts, seg);
    Py_DECREF(seg);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* Direction.advance(parts, n, history) of dicomwire.fastpath, its result
 * unused: the in-order update of a burst's parts. */
static int advance(PyObject *dr, PyObject *parts, long long n, long long history)
{
    long long off, seq, hb;
    if (get_ll(dr, s_next_off, &off) != 1 || get_ll(dr, s_next_seq, &seq) != 1
        || get_ll(dr, s_hist_bytes, &hb) != 1) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "direction state out of range");
        return -1;
    }
    PyObject *next = PyLong_FromLongLong((seq + n) & MASK);
    if (set_ll(dr, s_next_off, off + n) < 0 || next == NULL
        || aset(dr, s_expect, next) < 0 || aset(dr, s_next_seq, next) < 0) {
        Py_XDECREF(next);
        return -1;
    }
    Py_DECREF(next);
    PyObject *h = aget(dr, s_history);
    if (h == NULL)
        return -1;
    if (!PyList_Check(h)) {
        Py_DECREF(h);
        PyErr_SetString(PyExc_TypeError, "history is not a list");
        return -1;
    }
    int bad = PyList_SetSlice(h, PyList_GET_SIZE(h), PyList_GET_SIZE(h), parts) < 0;
    hb += n;
    if (!bad && hb > history) {
        /* By count: what is kept still ends at next_off. */
        bad = PyList_SetSlice(h, 0, PyList_GET_SIZE(h) / 2, NULL) < 0;
        hb = 0;
        for (Py_ssize_t i = 0; !bad && i < PyList_GET_SIZE(h); i++) {
            Py_ssize_t len = PyObject_Length(PyList_GET_ITEM(h, i));
            bad = len < 0;
            hb += len;
        }
    }
    Py_DECREF(h);
    return bad ? -1 : set_ll(dr, s_hist_bytes, hb);
}

/* burst, lane = self._burst_end(buf, burst, parts, taken, lane, last_n, last, ack_last):
 * FastPath._burst_end, the time read from the record at ``last``. */
static int burst_end(Walk *w, long long history, PyObject *discard)
{
    PyObject *hit = w->burst, *parts = w->parts, *stream, *dr = NULL;
    int r = -1;
    w->burst = w->parts = NULL;
    long long lane = w->lane, last_frame = LLONG_MIN;     /* (a frame number: always set) */
    w->lane = 0;
    Py_ssize_t count = PyList_GET_SIZE(parts);
    if (count == 0) {
        r = 0;
        goto done;
    }
    long long ts = w->last_ts;
    dr = direction(hit, &stream);
    if (dr == NULL || get_ll(stream, s_last_frame, &last_frame) < 0)
        goto done;
    if (w->last_n > last_frame
        && (set_ll(stream, s_last_frame, w->last_n) < 0 || set_ll(stream, s_last_ts, ts) < 0))
        goto done;
    if (add_ll(dr, s_frames, count) < 0
        || set_new(dr, s_ack, PyLong_FromUnsignedLong(w->ack_last)) < 0
        || advance(dr, parts, w->taken, history) < 0 || set_ll(dr, s_lane, lane) < 0)
        goto done;
    PyObject *lp = aget(dr, s_lane_parts);
    if (lp == NULL)
        goto done;
    if (lp != discard) {                        /* dr.lane_parts += parts */
        PyObject *sum = PyNumber_InPlaceAdd(lp, parts);
        if (sum == NULL || (sum != lp && aset(dr, s_lane_parts, sum) < 0)) {
            Py_XDECREF(sum);
            Py_DECREF(lp);
            goto done;
        }
        Py_DECREF(sum);
    }
    Py_DECREF(lp);
    r = 0;
done:
    Py_XDECREF(dr);
    Py_DECREF(hit);
    Py_DECREF(parts);
    return r;
}

/* A burst starts at flow entry ``hit`` (a reference is taken). */
static int burst_start(Walk *w, PyObject *hit, const unsigned char *key, PyObject *discard)
{
    PyObject *stream, *dr = direction(hit, &stream);
    if (dr == NULL)
        return -1;
    long long lane = 0;
    int e = get_ll(dr, s_expect, &w->expect);
    int l = e < 0 ? -1 : get_ll(dr, s_lane, &lane);     /* no call with an error set */
    PyObject *lp = e < 0 || l < 0 ? NULL : aget(dr, s_lane_parts);
    Py_DECREF(dr);
    if (lp == NULL)
        return -1;
    w->ignored = lp == discard;
    Py_DECREF(lp);
    if (l == 0) {
        PyErr_SetString(PyExc_OverflowError, "lane room beyond 64 bits");
        return -1;
    }
    w->parts = PyList_New(0);
    if (w->parts == NULL)
        return -1;
    Py_INCREF(hit);
    w->burst = hit;
    w->has_expect = e;
    w->lane = lane;
    w->taken = 0;
    memcpy(w->key, key, 12);
    return 0;
}

static PyObject *call_segment(PyObject *segment, PyObject *buf, PyObject *view, Py_ssize_t q,
                              Py_ssize_t at, Py_ssize_t e, uint32_t seq, uint32_t ack,
                              long long number, long long ts)
{
    return PyObject_CallFunction(segment, "OOnnnkkLL", buf, view, q, at, e,
                                 (unsigned long)seq, (unsigned long)ack, number, ts);
}

static PyObject *call_general(PyObject *general, PyObject *buf, long long number, long long ts,
                              long linktype, Py_ssize_t q, Py_ssize_t incl, uint32_t orig,
                              PyObject *iface)
{
    PyObject *data = PySequence_GetSlice(buf, q, q + incl);
    if (data == NULL)
        return NULL;
    PyObject *r = PyObject_CallFunction(general, "LLlOkO", number, ts, linktype, data,
                                        (unsigned long)orig, iface);
    Py_DECREF(data);
    return r;
}

/* The loop over records [pos, limit); 0 at its end, -1 on an error. */
static int loop(Walk *w, const unsigned char *base, Py_ssize_t limit, PyObject **o,
                const Layout *L, long long history)
{
    PyObject *buf = o[0], *view = o[1], *flows = o[2], *segment = o[3], *discard = o[4],
             *general = o[5], *iface = L->iface, *feed = o[8];
    long linktype = L->linktype;
    int big = L->big;
    unsigned checks = 0;
    while (w->pos + L->size <= limit) {
        if (!(++checks & 0xFFF) && PyErr_CheckSignals() < 0)
            return -1;                /* Ctrl-C: between records, as in Python */
        const unsigned char *r = base + w->pos;
        uint32_t incl, orig;
        Py_ssize_t q, end, rec = w->pos;
        long long rts;
        if (L->ng) {
            uint32_t btype = rd32(r, big), blen = rd32(r + 4, big), iid = rd32(r + 8, big),
                     hi = rd32(r + 12, big), lo = rd32(r + 16, big);
            incl = rd32(r + 20, big);
            orig = rd32(r + 24, big);
            q = w->pos + 28;
            end = w->pos + (Py_ssize_t)blen;
            Py_ssize_t opt = q + (Py_ssize_t)(((uint64_t)incl + 3) & ~(uint64_t)3);
            if (btype != 6 || end > limit || iid >= (uint64_t)L->nif || blen % 4
                || blen > (uint64_t)L->max_record || opt > end - 4
                || rd32(base + end - 4, big) != blen)
                break;
            const Clock *c = &L->clocks[iid];
            if (!c->ok)
                break;
            __int128 t = ((((__int128)hi << 32) | lo) * c->mult >> c->shift) + c->add;
            if (t > INT64_MAX || t < INT64_MIN) {
                w->handoff = 1;       /* beyond 64 bits: the Python walk goes on from here */
                break;
            }
            rts = (long long)t;
            linktype = c->linktype;
            iface = c->iface;
            if (opt != end - 4) {     /* its comments */
                PyObject *x = PyObject_CallFunction(L->options, "LOnn", w->number + 1, buf,
                                                    opt, end - 4);
                if (x == NULL)
                    return -1;
                Py_DECREF(x);
            }
        } else {
            uint32_t hi = rd32(r, big), lo = rd32(r + 4, big);
            incl = rd32(r + 8, big);
            orig = rd32(r + 12, big);
            q = w->pos + L->size;
            end = q + (Py_ssize_t)incl;
            if (end > limit)
                break;
            rts = (long long)hi * 1000000000LL + (long long)lo * L->mult;
        }
        w->pos = end;
        w->number += 1;
        if (incl < orig)
            w->truncated += 1;
        const unsigned char *f = base + q;
        int plain = 0, tcp = 0;
        uint32_t seq = 0, ack = 0;
        unsigned doff = 0, flags = 0, win = 0;
        Py_ssize_t at = 0, e = 0;
        if (linktype == 1 && incl >= 54) {
            unsigned etype = be16(f + 12), vihl = f[14], total = be16(f + 16),
                     frag = be16(f + 20), proto = f[23];
            doff = f[46];
            flags = f[47];
            win = be16(f + 48);
            seq = rd32(f + 38, 1);
            ack = rd32(f + 42, 1);
            at = 34 + (doff >> 4 << 2);
            e = 14 + (Py_ssize_t)total;
            tcp = etype == 0x0800 && vihl == 0x45 && proto == 6 && !(frag & 0x3FFF)
                  && 54 <= at && at <= e && e <= (Py_ssize_t)incl;
            if (tcp && win && (flags & 0x17) == 0x10) {
                Py_ssize_t n = e - at;
                if (w->burst && w->has_expect && seq == (uint64_t)w->expect && 0 < n
                    && n < w->lane && memcmp(f + 26, w->key, 12) == 0) {
                    if (take(w, view, q, at, e, rec, ack, rts) < 0)  /* the burst goes on */
                        return -1;
                    continue;
                }
                plain = 1;
            } else if (proto != 6 && etype == 0x0800) {
                w->non_tcp++;         /* UDP, ICMP...: the link decoder's count (added at the end) */
                continue;
            }
        }
        w->ts = rts;
        w->has_ts = 1;
        /* Anything but a bare ACK of another flow ends the burst first. */
        if (w->burst && (!plain || e > at || memcmp(f + 26, w->key, 12) == 0)
            && burst_end(w, history, discard) < 0)
            return -1;
        if (plain) {
            PyObject *hit = NULL;
            int err = 0, first = 0;       /* first: the segment is the burst's first */
            if (e == at) {
                int taken = bare_ack(flows, f + 26, seq, ack, w->number, w->ts);
                if (taken < 0)
                    return -1;
                if (taken)
                    continue;
            } else if ((hit = fits(flows, f + 26, seq, e - at, f[at], discard, &err)) != NULL) {
                Py_INCREF(hit);           /* as _segment's (stream, direction, length) */
                first = 1;
            } else {
                if (err < 0)
                    return -1;
                hit = call_segment(segment, buf, view, q, at, e, seq, ack, w->number, w->ts);
                if (hit == NULL)
                    return -1;
                if (hit == Py_True) {
                    Py_DECREF(hit);
                    continue;
                }
                first = PyTuple_Check(hit) && PyTuple_GET_SIZE(hit) == 3;
            }
            /* the bare ACK goes further: end the burst now */
            if (w->burst && burst_end(w, history, discard) < 0) {
                Py_XDECREF(hit);
                return -1;
            }
            int yes = hit == NULL ? 0 : PyObject_IsTrue(hit);
            if (yes) {                   /* a lane is open: a burst may follow */
                int bad = yes < 0 || burst_start(w, hit, f + 26, discard) < 0
                          || (first && take(w, view, q, at, e, rec, ack, rts) < 0);
                Py_DECREF(hit);
                if (bad)
                    return -1;
                continue;
            }
            Py_XDECREF(hit);
        }
        unsigned ctl = flags & 0x17;
        if (tcp && e == at && (ctl == 0x11 || ctl == 0x12)) {    /* FIN or SYN, with ACK */
            int c = control(flows, f + 26, seq, ack, flags, w->number, w->ts);
            if (c < 0)
                return -1;
            if (c)
                continue;
        }
        if (tcp && feed != Py_None) {     /* the general path, past its link decode */
            if (feed_segment(feed, f, at, e, seq, ack, doff, flags, win, w->number, w->ts) < 0)
                return -1;
            continue;
        }
        PyObject *g = call_general(general, buf, w->number, w->ts, linktype, q, incl, orig, iface);
        if (g == NULL)
            return -1;
        Py_DECREF(g);
    }
    return 0;
}

/* The layout argument: (False, big_endian, record_size, ts_mult, linktype, iface)
 * for classic pcap, (True, big_endian, max_record, interfaces, options) for
 * pcapng, interfaces as CaptureReader.epb_layout's: (mult or None, shift,
 * add, linktype, iface) each. 0, or -1 with an error set; *clocks is
 * PyMem_Malloc'ed (pcapng). An interface whose add does not fit 64 bits
 * is left to the Python walk, as one with mult None. */
static int layout(PyObject *t, Layout *L)
{
    memset(L, 0, sizeof *L);
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) < 5) {
        PyErr_SetString(PyExc_TypeError, "layout: a tuple");
        return -1;
    }
    L->ng = PyObject_IsTrue(PyTuple_GET_ITEM(t, 0));
    L->big = PyObject_IsTrue(PyTuple_GET_ITEM(t, 1));
    if (!L->ng) {
        if (!PyArg_ParseTuple(t, "ppnLlO", &L->ng, &L->big, &L->size, &L->mult, &L->linktype,
                              &L->iface))
            return -1;
        return 0;
    }
    PyObject *ifs;
    if (!PyArg_ParseTuple(t, "ppnO!O", &L->ng, &L->big, &L->max_record, &PyList_Type, &ifs,
                          &L->options))
        return -1;
    L->size = 28;
    L->nif = PyList_GET_SIZE(ifs);
    L->clocks = PyMem_Calloc(L->nif ? L->nif : 1, sizeof(Clock));
    if (L->clocks == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < L->nif; i++) {
        PyObject *it = PyList_GET_ITEM(ifs, i), *mult, *add;
        Clock *c = &L->clocks[i];
        if (!PyArg_ParseTuple(it, "OiOlO", &mult, &c->shift, &add, &c->linktype, &c->iface))
            return -1;
        if (mult == Py_None)
            continue;
        int o1, o2;
        c->mult = PyLong_AsLongLongAndOverflow(mult, &o1);
        c->add = PyLong_AsLongLongAndOverflow(add, &o2);
        if (PyErr_Occurred())
            return -1;
        c->ok = !o1 && !o2 && c->mult >= 0 && c->mult <= 1000000000LL && c->shift >= 0
                && c->shift < 128;
    }
    return 0;
}

/* walk(buf, view, pos, limit, number, truncated, layout, flows, segment,
 *      discard, general, stats, feed, history, state)
 * Walks records as FastPath._loop does; ``state`` (a list of 12) receives,
 * at the end or on an error, what the loop's ``finally`` needs: [pos,
 * number, truncated, ts, burst, parts, taken, lane, last_n, last, ack_last]
 * and whether the Python walk must go on from ``pos`` (a time beyond 64
 * bits). Returns None. */
static PyObject *walk(PyObject *self, PyObject *args)
{
    PyObject *o[9], *st, *lay;
    Py_ssize_t pos, limit;
    long long number, truncated, history;
    if (!PyArg_ParseTuple(args, "OOnnLLOO!OOOOOLO!", &o[0], &o[1], &pos, &limit, &number,
                          &truncated, &lay, &PyDict_Type, &o[2], &o[3], &o[4], &o[5], &o[6],
                          &o[8], &history, &PyList_Type, &st))
        return NULL;
    if (PyList_GET_SIZE(st) != 12) {
        PyErr_SetString(PyExc_ValueError, "state must be a list of 12");
        return NULL;
    }
    Layout L;
    if (layout(lay, &L) < 0) {
        PyMem_Free(L.clocks);
        return NULL;
    }
    Py_buffer b;
    if (PyObject_GetBuffer(o[0], &b, PyBUF_SIMPLE) < 0) {
        PyMem_Free(L.clocks);
        return NULL;
    }
    if (limit > b.len)
        limit = b.len;
    Walk w = {0};
    w.pos = pos;
    w.number = number;
    w.truncated = truncated;
    int bad = loop(&w, (const unsigned char *)b.buf, limit, o, &L, history);
    PyBuffer_Release(&b);
    PyMem_Free(L.clocks);
    /* The state, whatever happened (an error is kept while it is written). */
    PyObject *exc_type, *exc, *tb;
    PyErr_Fetch(&exc_type, &exc, &tb);
    int lost = w.non_tcp && add_ll(o[6], s_non_tcp, w.non_tcp) < 0;
    PyObject *vals[12];
    vals[0] = PyLong_FromSsize_t(w.pos);
    vals[1] = PyLong_FromLongLong(w.number);
    vals[2] = PyLong_FromLongLong(w.truncated);
    vals[3] = w.has_ts ? PyLong_FromLongLong(w.ts) : Py_NewRef(Py_None);
    vals[4] = w.burst ? w.burst : Py_NewRef(Py_None);
    vals[5] = w.parts ? w.parts : Py_NewRef(Py_None);
    vals[6] = PyLong_FromLongLong(w.taken);
    vals[7] = PyLong_FromLongLong(w.lane);
    vals[8] = w.burst ? PyLong_FromLongLong(w.last_n) : Py_NewRef(Py_None);
    vals[9] = w.burst ? PyLong_FromSsize_t(w.last) : Py_NewRef(Py_None);
    vals[10] = w.burst ? PyLong_FromUnsignedLong(w.ack_last) : Py_NewRef(Py_None);
    vals[11] = PyBool_FromLong(w.handoff);
    for (int i = 0; i < 12; i++) {
        if (vals[i] == NULL)
            lost = 1;
        else
            PyList_SetItem(st, i, vals[i]);      /* steals the reference */
    }
    if (lost) {
        PyErr_Clear();
        if (exc_type == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
    }
    PyErr_Restore(exc_type, exc, tb);
    if (bad)
        return NULL;
    Py_RETURN_NONE;
}

/* The runs of at least `minimum` printable ASCII bytes (0x20-0x7E) of a
 * buffer, [(start, end), ...]: where a search for text values needs to look
 * (deidentify's self-check, exporters/deidentify/check.py, which has the
 * same answer in Python where this module is not built). A run that long
 * holds one of every `minimum`-th bytes, so only those are looked at until
 * one is printable (in binary data, most are not). */
static unsigned char printable[256];

static int append_run(PyObject *out, Py_ssize_t start, Py_ssize_t end)
{
    PyObject *t = Py_BuildValue("(nn)", start, end);
    int r = t == NULL ? -1 : PyList_Append(out, t);
    Py_XDECREF(t);
    return r;
}

static PyObject *printable_runs(PyObject *self, PyObject *args)
{
    Py_buffer b;
    Py_ssize_t minimum;
    if (!PyArg_ParseTuple(args, "y*n", &b, &minimum))
        return NULL;
    if (minimum < 1)
        minimum = 1;
    PyObject *out = PyList_New(0);
    const unsigned char *p = b.buf;
    Py_ssize_t n = b.len, floor = 0, i = minimum - 1;
    while (out != NULL && i < n) {
        if (!printable[p[i]]) {
            i += minimum;
            continue;
        }
        Py_ssize_t start = i, end = i + 1;
        while (start > floor && printable[p[start - 1]])
            start--;
        while (end < n && printable[p[end]])
            end++;
        if (end - start >= minimum && append_run(out, start, end) < 0)
            Py_CLEAR(out);
        floor = end;                    /* p[end] is not printable: the next run starts after */
        i = end + minimum;
    }
    PyBuffer_Release(&b);
    return out;
}

/* The length the record at p claims (kind 0, pcap: 16-byte record headers
 * whose included length is at 8, `big` their byte order; kind 1, pcapng:
 * a block's length, a section header (re)setting *big), or 0 when fewer
 * bytes than its header are there. */
static uint64_t record_length(const unsigned char *p, size_t size, int kind, int *big)
{
    if (kind == 0)
        return size < 16 ? 0 : 16 + (uint64_t)rd32(p + 8, *big);
    if (size < 12)
        return 0;
    if (memcmp(p, "\x0a\x0d\x0d\x0a", 4) == 0)
        *big = memcmp(p + 8, "\x4d\x3c\x2b\x1a", 4) != 0;
    return rd32(p + 4, *big);
}

/* The records of p[pos:size] that fit in it (record_length), walked from
 * their headers alone; pcapng blocks of types 2, 3 and 6 hold a packet.
 * Returns the packets; *pos comes back after the last record that fits. */
static Py_ssize_t walk_records(const unsigned char *p, Py_ssize_t size, int kind,
                               Py_ssize_t *pos, int *big)
{
    Py_ssize_t n = 0, at = *pos;
    for (;;) {
        uint64_t len = record_length(p + at, (size_t)(size - at), kind, big);
        if (len == 0 || len > (uint64_t)(size - at)
            || (kind == 1 && (len < 12 || len % 4)))
            break;
        uint32_t type = kind == 0 ? 0 : rd32(p + at, *big);
        n += kind == 0 || type == 2 || type == 3 || type == 6;
        at += (Py_ssize_t)len;
    }
    *pos = at;
    return n;
}

/* count_file(fd, kind, pos, big, budget) -> (n, pos, big, status): the
 * frames of a capture file from offset `pos` (see walk_records), for
 * --dask's frame bases (dicomwire.capcount, whose Python loop gives the
 * same answer). Reads with pread into its own buffer, the GIL released
 * throughout (a thread counts while the client imports), until about
 * `budget` bytes are walked (the caller may stop between calls). status:
 * 0 more to walk, 1 the end of the file reached after a whole record, -1 a
 * record the file ends inside (or claiming 1 GiB or more). An error
 * reading raises OSError. */
static PyObject *count_file(PyObject *self, PyObject *args)
{
    int fd, kind, big, status = 0, err = 0;
    long long start, budget;
    if (!PyArg_ParseTuple(args, "iiLiL", &fd, &kind, &start, &big, &budget))
        return NULL;
    size_t cap = 1 << 20;
    unsigned char *buf = PyMem_RawMalloc(cap);
    if (buf == NULL)
        return PyErr_NoMemory();
    long long n = 0, pos = start, end = LLONG_MAX;
    Py_BEGIN_ALLOW_THREADS
    struct stat st;
    if (fstat(fd, &st) == 0)
        end = (long long)st.st_size;    /* a record claiming past it is damage */
    for (;;) {
        ssize_t got = pread(fd, buf, cap, (off_t)pos);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        if (got == 0) {
            status = 1;
            break;
        }
        Py_ssize_t at = 0;
        n += walk_records(buf, (Py_ssize_t)got, kind, &at, &big);
        if (at == 0) {                  /* the next record does not fit */
            int order = big;            /* (walk_records read its section header) */
            uint64_t need = record_length(buf, (size_t)got, kind, &order);
            if ((size_t)got < cap || need == 0 || need > ((uint64_t)1 << 30)
                || (uint64_t)pos + need > (uint64_t)end) {
                status = -1;            /* the file ends inside it, or damage */
                break;
            }
            size_t grown = cap;
            while (grown < need)
                grown *= 2;
            unsigned char *more = PyMem_RawRealloc(buf, grown);
            if (more == NULL) {
                err = ENOMEM;
                break;
            }
            buf = more;
            cap = grown;
            continue;
        }
        pos += at;
        if (pos - start >= budget)
            break;
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(buf);
    if (err) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return Py_BuildValue("(LLii)", n, pos, big, status);
}

/* record(state, text) -> len(text): what dicomwire.handover.Recorder.write
 * does in Python, for a --dask worker's stdout (a show line each): the event
 * (frame, stream, kind, text) appended to the Outbox's columns, a chunk sent
 * at its limit. state: (host, frames, sids, kinds, texts, kind, outbox, END,
 * NO_STREAM). */
static PyObject *record(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyTuple_Check(args[0]) || PyTuple_GET_SIZE(args[0]) != 9 ||
            !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "record(state, text: str)");
        return NULL;
    }
    PyObject *st = args[0], *text = args[1];
    PyObject *host = PyTuple_GET_ITEM(st, 0), *frames = PyTuple_GET_ITEM(st, 1),
             *sids = PyTuple_GET_ITEM(st, 2), *kinds = PyTuple_GET_ITEM(st, 3),
             *texts = PyTuple_GET_ITEM(st, 4), *kind = PyTuple_GET_ITEM(st, 5),
             *box = PyTuple_GET_ITEM(st, 6), *end = PyTuple_GET_ITEM(st, 7),
             *none = PyTuple_GET_ITEM(st, 8);
    if (!PyList_Check(frames) || !PyList_Check(sids) || !PyList_Check(kinds) ||
            !PyList_Check(texts)) {
        PyErr_SetString(PyExc_TypeError, "record: the columns are lists");
        return NULL;
    }
    PyObject *frame = aget(host, s_frame), *stream = NULL, *sid = NULL;
    if (frame == NULL || (stream = aget(host, s_stream)) == NULL)
        goto fail;
    int set = PyObject_IsTrue(frame);
    if (set < 0)
        goto fail;
    if (!set) {                       /* after the last frame: END + the stream's first */
        PyObject *first = stream == Py_None ? PyLong_FromLong(0) : aget(stream, s_first_frame);
        if (first == NULL)
            goto fail;
        Py_SETREF(frame, PyNumber_Add(end, first));
        Py_DECREF(first);
        if (frame == NULL)
            goto fail;
    }
    if (stream == Py_None) {
        sid = Py_NewRef(none);
    } else {
        PyObject *id = aget(stream, s_id);
        if (id == NULL)
            goto fail;
        sid = PyNumber_Long(id);
        Py_DECREF(id);
        if (sid == NULL)
            goto fail;
    }
    if (PyList_Append(frames, frame) < 0 || PyList_Append(sids, sid) < 0 ||
            PyList_Append(kinds, kind) < 0 || PyList_Append(texts, text) < 0)
        goto fail;
    Py_CLEAR(frame);
    Py_CLEAR(stream);
    Py_CLEAR(sid);
    PyObject *limit = PyObject_GetAttr(box, s_limit);
    if (limit == NULL)
        return NULL;
    Py_ssize_t most = PyLong_AsSsize_t(limit);
    Py_DECREF(limit);
    if (most == -1 && PyErr_Occurred())
        return NULL;
    if (PyList_GET_SIZE(frames) >= most) {
        PyObject *r = PyObject_CallMethodNoArgs(box, s_flush);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(text));
fail:
    Py_XDECREF(frame);
    Py_XDECREF(stream);
    Py_XDECREF(sid);
    return NULL;
}

static PyMethodDef methods[] = {
    {"count_file", count_file, METH_VARARGS,
     "count_file(fd, kind, pos, big, budget) -> (frames, pos, big, status): see the source."},
    {"walk", walk, METH_VARARGS, "Walk capture records as dicomwire.fastpath does."},
    {"record", (PyCFunction)(void (*)(void))record, METH_FASTCALL,
     "record(state, text) -> len(text): dicomwire.handover.Recorder.write, compiled."},
    {"printable_runs", printable_runs, METH_VARARGS,
     "printable_runs(buffer, minimum): [(start, end)] of runs of printable ASCII."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dicomwire._fastwalk",
    "The compiled walk of dicomwire.fastpath (optional).", -1, methods,
};

PyMODINIT_FUNC PyInit__fastwalk(void)
{
#define INTERN(v, s) if ((v = PyUnicode_InternFromString(s)) == NULL) return NULL
    INTERN(s_dirs, "dirs");
    INTERN(s_expect, "expect");
    INTERN(s_holes, "holes");
    INTERN(s_last_frame, "last_frame");
    INTERN(s_last_ts, "last_ts");
    INTERN(s_frames, "frames");
    INTERN(s_ack, "ack");
    INTERN(s_lane, "lane");
    INTERN(s_non_tcp, "non_tcp");
    INTERN(s_next_off, "next_off");
    INTERN(s_next_seq, "next_seq");
    INTERN(s_history, "history");
    INTERN(s_hist_bytes, "hist_bytes");
    INTERN(s_lane_parts, "lane_parts");
    INTERN(s_closed, "closed");
    INTERN(s_dissector, "dissector");
    INTERN(s_sniff, "sniff");
    INTERN(s_lane_granted, "lane_granted");
    INTERN(s_isn, "isn");
    INTERN(s_synack, "synack");
    INTERN(s_fin, "fin");
    INTERN(s_fin_off, "fin_off");
    INTERN(s_frame, "frame");
    INTERN(s_stream, "stream");
    INTERN(s_first_frame, "first_frame");
    INTERN(s_id, "id");
    INTERN(s_limit, "limit");
    INTERN(s_flush, "flush");
    for (int c = 0x20; c < 0x7F; c++)
        printable[c] = 1;
    if (PyType_Ready(&PartType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "VERSION", VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

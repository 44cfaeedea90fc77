/* The analyser's compiled inner loop: the common packet of a capture, without Python.
 *
 * `scan(...)` walks frames start..count of one read chunk (frame i is buf[starts[i]:ends[i]],
 * its time times[i]) and does for each what `ConnectionTable._frame` does for a TCP segment
 * of a connection already in the table whose tracker is a `MemoTracker` on the shared
 * states: decode the headers as `table.decode` does (every link type the reader accepts,
 * VLAN tags, IPv4 with or without options, IPv6 with extension headers), find the connection
 * by its canonical key, and move the tracker to the next shared state. A frame that is not
 * TCP over IP is counted as skipped; the packets of a connection the filter left out are
 * counted. A tracker off the shared states (`_real` set, or a plain one) and a state never
 * met (a memo miss) are fed here too, through their Python `feed_fields`, as `_frame` feeds
 * them. It stops, returning the frame's index, at the first frame that needs Python: a SYN
 * without ACK that may start a connection where C may not (a 4-tuple in use, a filter, a
 * collected connection, a self-connection), a connection not in the table, the collected
 * connection's packets, and the frames after which the table sweeps. Python handles that
 * frame (`_frame`) and calls again from the next one: the results are the Python path's,
 * frame for frame (the tests compare the two on every capture they make).
 *
 * A SYN without ACK on a 4-tuple with no connection in the table starts one here when the
 * table allows it (`can_start`: no filter, no packets collected): what `_frame` and
 * `ConnectionTable._new` do (the tracker itself still comes from `TrackerMemo.tracker`).
 *
 * `walk(...)` is the pcap record walk of one read chunk (`CaptureFile._pcap_batches`): where
 * each record's data starts and ends, and its time, with the same float operations;
 * `walk_ng(...)` is the same for the enhanced packet blocks of a pcapng file.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Bump with tcpclose/analyze/compiled.py's API whenever a function here changes. */
#define FASTSCAN_API 7
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <structmember.h>

static PyObject *s_real, *s_node, *s_base_o, *s_base_r, *s_end, *s_next, *s_tracker,
    *s_first, *s_feed, *s_address, *s_flows, *s_live, *s_addresses, *s_memo, *s_number, *s_ended, *s_done,
    *s_verdict_m, *s_misses, *s_hits, *s_misses_memo, *s_roots, *s_packets_f;
static PyObject *s_number_f, *s_verdict_f, *s_dict, *s_originator, *s_responder, *s_start,
    *s_end_f, *s_tail_names[10], *s_zeek_names[6];

static inline uint32_t u32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint32_t u16(const unsigned char *p) { return ((uint32_t)p[0] << 8) | p[1]; }



/* Slots read and written in place: the offsets of a __slots__ member (a T_OBJECT_EX member
 * descriptor) of a type, found once per type; -1 for anything else (then the attribute
 * protocol). Only used on objects of exactly that type. */
typedef struct {
    PyTypeObject *type;
    Py_ssize_t real, node, base_o, base_r, end, next;
    /* MemoTracker's other slots and _Node's (made and read in C: `new_memo_tracker`,
     * `memo_verdict`) */
    Py_ssize_t memo, misses, first, originator, responder, start, verdict, tracker;
} Offsets;
static Offsets tracker_at = {.type = NULL}, node_at = {.type = NULL};
/* Row's two slots (`tcpclose.analyze.table.Row`, a dataclass with slots) */
static PyTypeObject *row_type_at = NULL;
static Py_ssize_t row_number_at = -1, row_verdict_at = -1;

static Py_ssize_t offset_of(PyTypeObject *type, PyObject *name) {
    PyObject *d = PyObject_GetAttr((PyObject *)type, name);
    if (!d) {
        PyErr_Clear();
        return -1;
    }
    Py_ssize_t off = -1;
    if (Py_IS_TYPE(d, &PyMemberDescr_Type)) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type == T_OBJECT_EX && !(m->flags & READONLY))
            off = m->offset;
    }
    Py_DECREF(d);
    return off;
}

static void find_offsets(Offsets *at, PyTypeObject *type) {
    if (at->type == type)
        return;
    /* A reference kept: a type freed while cached, and another made at its address,
     * would otherwise get the old type's slot offsets. */
    Py_INCREF(type);
    Py_XDECREF(at->type);
    at->type = type;
    at->real = offset_of(type, s_real);
    at->node = offset_of(type, s_node);
    at->base_o = offset_of(type, s_base_o);
    at->base_r = offset_of(type, s_base_r);
    at->end = offset_of(type, s_end);
    at->next = offset_of(type, s_next);
    at->memo = offset_of(type, s_memo);
    at->misses = offset_of(type, s_misses);
    at->first = offset_of(type, s_first);
    at->originator = offset_of(type, s_originator);
    at->responder = offset_of(type, s_responder);
    at->start = offset_of(type, s_start);
    at->verdict = offset_of(type, s_verdict_m);
    at->tracker = offset_of(type, s_tracker);
}

/* What the slot at `off` holds (borrowed; NULL when unset). */
static inline PyObject *in_slot(PyObject *o, Py_ssize_t off) {
    return *(PyObject **)((char *)o + off);
}

/* Put v in the slot at `off` of a new object (whose slots are all NULL). */
static inline void put(PyObject *o, Py_ssize_t off, PyObject *v) {
    *(PyObject **)((char *)o + off) = Py_NewRef(v);
}

/* `TrackerMemo.tracker(t, src, sport, dst, dport, flags)` for a SYN without ACK, made here:
 * a MemoTracker on the memo's root for a first SYN, its slots set as its __init__ sets them
 * (not flipped: the sender is the originator). NULL without an error when Python must make
 * it (the memo not worth it, no root yet, slots not found), NULL with one on failure. */
static PyObject *new_memo_tracker(PyObject *memo, PyTypeObject *memo_type, double t,
                                  PyObject *src, uint32_t sport, PyObject *dst,
                                  uint32_t dport) {
    const Offsets *at = &tracker_at;
    if (at->type != memo_type || at->memo < 0 || at->node < 0 || at->real < 0 ||
        at->misses < 0 || at->base_o < 0 || at->base_r < 0 || at->first < 0 ||
        at->originator < 0 || at->responder < 0 || at->start < 0 || at->end < 0)
        return NULL;
    PyObject *hits_obj = PyObject_GetAttr(memo, s_hits);
    PyObject *misses_obj = hits_obj ? PyObject_GetAttr(memo, s_misses_memo) : NULL;
    PyObject *roots = misses_obj ? PyObject_GetAttr(memo, s_roots) : NULL;
    PyObject *result = NULL;
    if (!roots)
        goto out;
    long long hits = PyLong_AsLongLong(hits_obj), misses = PyLong_AsLongLong(misses_obj);
    if (PyErr_Occurred() || !PyDict_Check(roots)) {
        PyErr_Clear();
        goto out;
    }
    if (!(hits < 4096 || misses * 8 <= hits + misses)) /* `TrackerMemo.worth_it` */
        goto out;
    PyObject *kind = PyTuple_Pack(2, Py_False, Py_False); /* (flipped, not a SYN) */
    if (!kind)
        goto out;
    PyObject *root = PyDict_GetItemWithError(roots, kind); /* borrowed */
    Py_DECREF(kind);
    if (!root)
        goto out;
    PyObject *sp = PyLong_FromUnsignedLong(sport), *dp = PyLong_FromUnsignedLong(dport);
    PyObject *a = sp ? PyTuple_Pack(2, src, sp) : NULL, *b = dp ? PyTuple_Pack(2, dst, dp) : NULL;
    PyObject *tt = PyFloat_FromDouble(t), *zero = PyLong_FromLong(0);
    PyObject *o = (a && b && tt && zero) ? memo_type->tp_alloc(memo_type, 0) : NULL;
    if (o) {
        put(o, at->memo, memo);
        put(o, at->node, root);
        put(o, at->real, Py_None);
        put(o, at->misses, zero);
        put(o, at->base_o, Py_None);
        put(o, at->base_r, Py_None);
        put(o, at->first, Py_True);
        put(o, at->originator, a);
        put(o, at->responder, b);
        put(o, at->start, tt);
        put(o, at->end, tt);
        result = o;
    }
    Py_XDECREF(sp);
    Py_XDECREF(dp);
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(tt);
    Py_XDECREF(zero);
out:
    Py_XDECREF(hits_obj);
    Py_XDECREF(misses_obj);
    Py_XDECREF(roots);
    return result;
}

/* getattr(o, name) (a new reference), from the slot at `off` when there is one and it is set */
static inline PyObject *get(PyObject *o, PyObject *name, Py_ssize_t off) {
    if (off >= 0) {
        PyObject *v = *(PyObject **)((char *)o + off);
        if (v)
            return Py_NewRef(v);
    }
    return PyObject_GetAttr(o, name);
}

/* setattr(o, name, v), into the slot at `off` when there is one */
static inline int set(PyObject *o, PyObject *name, Py_ssize_t off, PyObject *v) {
    if (off >= 0) {
        PyObject **p = (PyObject **)((char *)o + off);
        PyObject *old = *p;
        *p = Py_NewRef(v);
        Py_XDECREF(old);
        return 0;
    }
    return PyObject_SetAttr(o, name, v);
}

/* Move a MemoTracker on the shared states by one segment (`MemoTracker.feed_fields` when the
 * next state is known): 1 done, 0 a state never met (its `feed_fields` computes it: `feed`),
 * -1 error. */
static int step(PyObject *tracker, int is_orig, unsigned flags, uint32_t seq, uint32_t ack,
                int win_zero, long length, double t) {
    const Offsets *at = &tracker_at; /* (the caller checked the tracker's type) */
    PyObject *base_obj = get(tracker, is_orig ? s_base_o : s_base_r, is_orig ? at->base_o : at->base_r);
    if (!base_obj)
        return -1;
    uint32_t base;
    if (base_obj == Py_None) { /* this side's first packet: its numbers start here */
        Py_DECREF(base_obj);
        PyObject *seq_obj = PyLong_FromUnsignedLong(seq);
        if (!seq_obj)
            return -1;
        int failed = set(tracker, is_orig ? s_base_o : s_base_r,
                         is_orig ? at->base_o : at->base_r, seq_obj);
        Py_DECREF(seq_obj);
        if (failed)
            return -1;
        base = seq;
    } else {
        base = (uint32_t)PyLong_AsUnsignedLongMask(base_obj);
        Py_DECREF(base_obj);
    }
    uint32_t rel_ack = 0;
    if (flags & 0x10) {
        PyObject *peer = get(tracker, is_orig ? s_base_r : s_base_o, is_orig ? at->base_r : at->base_o);
        if (!peer)
            return -1;
        if (peer != Py_None)
            rel_ack = ack - (uint32_t)PyLong_AsUnsignedLongMask(peer);
        Py_DECREF(peer);
    }
    PyObject *node = get(tracker, s_node, at->node);
    if (!node)
        return -1;
    find_offsets(&node_at, Py_TYPE(node));
    PyObject *next = get(node, s_next, node_at.next);
    Py_DECREF(node);
    if (!next)
        return -1;
    /* (is_orig, flags & 0x17, relative seq, relative ack, window 0, length) */
    PyObject *tkey = PyTuple_New(6);
    if (!tkey) {
        Py_DECREF(next);
        return -1;
    }
    PyObject *o = is_orig ? Py_True : Py_False, *w = win_zero ? Py_True : Py_False;
    PyObject *f = PyLong_FromUnsignedLong(flags & 0x17);
    PyObject *sq = PyLong_FromUnsignedLong((uint32_t)(seq - base));
    PyObject *ak = PyLong_FromUnsignedLong(rel_ack);
    PyObject *ln = PyLong_FromLong(length);
    Py_INCREF(o);
    Py_INCREF(w);
    PyTuple_SET_ITEM(tkey, 0, o);
    PyTuple_SET_ITEM(tkey, 1, f);
    PyTuple_SET_ITEM(tkey, 2, sq);
    PyTuple_SET_ITEM(tkey, 3, ak);
    PyTuple_SET_ITEM(tkey, 4, w);
    PyTuple_SET_ITEM(tkey, 5, ln);
    if (!f || !sq || !ak || !ln) {
        Py_DECREF(tkey);
        Py_DECREF(next);
        return -1;
    }
    PyObject *nxt = PyDict_Check(next) ? PyDict_GetItemWithError(next, tkey) : NULL;
    Py_DECREF(tkey);
    if (!nxt) {
        Py_DECREF(next);
        return PyErr_Occurred() ? -1 : 0; /* a state nobody met yet: Python computes it */
    }
    Py_INCREF(nxt);
    Py_DECREF(next);
    PyObject *tt = PyFloat_FromDouble(t);
    if (!tt) {
        Py_DECREF(nxt);
        return -1;
    }
    int failed = set(tracker, s_node, at->node, nxt) || set(tracker, s_end, at->end, tt);
    Py_DECREF(tt);
    Py_DECREF(nxt);
    return failed ? -1 : 1;
}

/* One frame's TCP segment, as `table.decode` finds it: the addresses (alen bytes each), the
 * TCP header and the payload length. */
typedef struct {
    const unsigned char *src, *dst, *tcp;
    Py_ssize_t alen;
    long length;
} Segment;

/* `table.decode` of the frame f[0:flen] of link type lt: 1 a TCP segment (in *s), 0 not one
 * (decode gives None: not TCP over IP, a later fragment, cut short). Same checks, same
 * order, same fields. */
static int decode_frame(long lt, const unsigned char *f, Py_ssize_t flen, Segment *s) {
    Py_ssize_t n;
    unsigned et;
    if (lt == 1) {
        et = flen >= 14 ? u16(f + 12) : 0;
        n = 14;
        while ((et == 0x8100 || et == 0x88A8 || et == 0x9100) && n + 4 <= flen) {
            et = u16(f + n + 2);
            n += 4;
        }
    } else if (lt == 113) {
        et = flen >= 16 ? u16(f + 14) : 0;
        n = 16;
    } else if (lt == 276) {
        et = flen >= 20 ? u16(f) : 0;
        n = 20;
    } else if (lt == 0 || lt == 108) {
        n = 4;
        unsigned family = flen >= 4 ? (f[0] | f[3]) : 0;
        et = family == 2 ? 0x0800
             : (family == 10 || family == 24 || family == 28 || family == 30) ? 0x86DD
                                                                              : 0;
    } else { /* raw IP: 12, 14, 101, 228, 229 */
        n = 0;
        unsigned version = flen > 0 ? f[0] >> 4 : 0;
        et = version == 4 ? 0x0800 : version == 6 ? 0x86DD : 0;
    }
    Py_ssize_t th;
    long ip_len;
    if (et == 0x0800) {
        if (n + 20 > flen)
            return 0;
        const unsigned char *h = f + n;
        Py_ssize_t ihl = (h[0] & 15) * 4;
        if (h[0] >> 4 != 4 || h[9] != 6 || ihl < 20 || ((h[6] & 0x1F) | h[7]))
            return 0;
        th = n + ihl;
        if (th + 20 > flen)
            return 0;
        ip_len = (long)u16(h + 2) - (long)ihl;
        if (ip_len < 0) /* total length 0 (TSO): the payload is what was captured */
            ip_len = (long)(flen - th);
        s->src = h + 12, s->dst = h + 16, s->alen = 4;
    } else if (et == 0x86DD) {
        if (n + 40 > flen)
            return 0;
        const unsigned char *h = f + n;
        unsigned nh = h[6];
        th = n + 40;
        while ((nh == 0 || nh == 43 || nh == 60) && th + 8 <= flen) {
            nh = f[th];
            th += ((Py_ssize_t)f[th + 1] + 1) * 8;
        }
        if (nh == 44 && th + 8 <= flen) { /* a fragment: only the first has the header */
            if (u16(f + th + 2) & 0xFFF8)
                return 0;
            nh = f[th];
            th += 8;
        }
        if (nh != 6 || th + 20 > flen)
            return 0;
        ip_len = (long)u16(h + 4) - (long)(th - n - 40);
        if (ip_len <= 0)
            ip_len = (long)(flen - th);
        s->src = h + 8, s->dst = h + 24, s->alen = 16;
    } else {
        return 0;
    }
    s->tcp = f + th;
    long length = ip_len - (long)((s->tcp[12] >> 4) << 2);
    s->length = length < 0 ? 0 : length;
    return 1;
}

/* tracker.feed_fields(t, is_orig, flags, seq, ack, win, length), as `_frame` calls it:
 * 0, or -1 with the error it raised. */
static int feed(PyObject *tracker, double t, int is_orig, unsigned flags, uint32_t seq,
                uint32_t ack, unsigned win, long length) {
    PyObject *args[8] = {tracker, PyFloat_FromDouble(t), Py_NewRef(is_orig ? Py_True : Py_False),
                         PyLong_FromUnsignedLong(flags & 0xFF), PyLong_FromUnsignedLong(seq),
                         PyLong_FromUnsignedLong(ack), PyLong_FromUnsignedLong(win),
                         PyLong_FromLong(length)};
    PyObject *r = NULL;
    int made = 1;
    for (int j = 1; j < 8; j++)
        made = made && args[j];
    if (made) {
        Py_INCREF(tracker); /* (held by the table's dict; kept whatever the call does) */
        r = PyObject_VectorcallMethod(s_feed, args, 8, NULL); /* (no slot before args) */
        Py_DECREF(tracker);
    }
    for (int j = 1; j < 8; j++)
        Py_XDECREF(args[j]);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* The text of an address (4 or 16 bytes), as `ConnectionTable._address` gives it (its cache
 * first). */
static PyObject *address(PyObject *table, PyObject *addresses, const unsigned char *raw,
                         Py_ssize_t alen) {
    PyObject *key = PyBytes_FromStringAndSize((const char *)raw, alen);
    if (!key)
        return NULL;
    PyObject *text = PyDict_GetItemWithError(addresses, key);
    if (text) {
        Py_INCREF(text);
    } else if (!PyErr_Occurred()) {
        text = PyObject_CallMethodOneArg(table, s_address, key);
    }
    Py_DECREF(key);
    return text;
}

/* `ConnectionTable._new` for a SYN without ACK (no filter, not a self-connection) whose
 * canonical key is key[0:klen], then the SYN fed to the new tracker. Returns 0 or -1. */
static int start_connection(PyObject *table, PyObject *memo, PyObject *flows, PyObject *live,
                 PyObject *addresses, PyObject *started, long long *number, long long packets,
                 PyObject *memo_type, const Segment *g, const unsigned char *key,
                 Py_ssize_t klen, int swap, double t, unsigned flags) {
    const unsigned char *tcp = g->tcp;
    uint32_t sport = u16(tcp), dport = u16(tcp + 2);
    int ok = -1;
    PyObject *src = NULL, *dst = NULL, *tracker = NULL, *entry = NULL, *canonical = NULL,
             *num = NULL, *first = NULL;
    src = address(table, addresses, g->src, g->alen);
    if (!src)
        goto out;
    dst = address(table, addresses, g->dst, g->alen);
    if (!dst)
        goto out;
    tracker = new_memo_tracker(memo, (PyTypeObject *)memo_type, t, src, sport, dst, dport);
    if (!tracker && PyErr_Occurred())
        goto out;
    if (!tracker)
        tracker = PyObject_CallMethod(memo, "tracker", "dOIOII", t, src, sport, dst, dport, flags);
    if (!tracker)
        goto out;
    first = PyObject_GetAttr(tracker, s_first);
    if (!first)
        goto out;
    int first_true = PyObject_IsTrue(first);
    if (first_true < 0)
        goto out;
    canonical = PyBytes_FromStringAndSize((const char *)key, klen);
    num = PyLong_FromLongLong(*number);
    if (!canonical || !num)
        goto out;
    entry = PyList_New(4);
    if (!entry)
        goto out;
    Py_INCREF(tracker);
    PyList_SET_ITEM(entry, 0, tracker);
    PyObject *orig = (first_true != swap) ? Py_True : Py_False;
    Py_INCREF(orig);
    PyList_SET_ITEM(entry, 1, orig);
    Py_INCREF(num);
    PyList_SET_ITEM(entry, 2, num);
    Py_INCREF(canonical);
    PyList_SET_ITEM(entry, 3, canonical);
    if (PyDict_SetItem(flows, canonical, entry) || PyDict_SetItem(live, num, entry))
        goto out;
    *number += 1;
    if (started != Py_None) {
        PyObject *p = PyLong_FromLongLong(packets);
        if (!p || PyList_Append(started, p)) {
            Py_XDECREF(p);
            goto out;
        }
        Py_DECREF(p);
    }
    /* feed the SYN: the packet's direction is the originator's iff entry[1] != swap */
    int is_orig = (first_true != swap) != swap;
    uint32_t seq = u32(tcp + 4), ack = u32(tcp + 8);
    int win_zero = u16(tcp + 14) == 0;
    int done = 0;
    if ((PyObject *)Py_TYPE(tracker) == memo_type) {
        PyObject *real = get(tracker, s_real, tracker_at.real);
        if (!real)
            goto out;
        Py_DECREF(real);
        if (real == Py_None) {
            done = step(tracker, is_orig, flags, seq, ack, win_zero, g->length, t);
            if (done < 0)
                goto out;
        }
    }
    if (!done) {
        PyObject *r = PyObject_CallMethod(tracker, "feed_fields", "dOIkkIl", t,
                                          is_orig ? Py_True : Py_False, flags & 0xFF,
                                          (unsigned long)seq, (unsigned long)ack, u16(tcp + 14),
                                          g->length);
        if (!r)
            goto out;
        Py_DECREF(r);
    }
    ok = 0;
out:
    Py_XDECREF(src);
    Py_XDECREF(dst);
    Py_XDECREF(tracker);
    Py_XDECREF(first);
    Py_XDECREF(entry);
    Py_XDECREF(canonical);
    Py_XDECREF(num);
    return ok;
}

/* scan(table, buf, starts, ends, times, first, count, linktype, memo_type, packets_before,
 *      sweep_mask, index, cuts, can_start, started, ignored, collect, max_open)
 *   -> (index of the first frame not handled (count: all), TCP segments, frames skipped)
 * Frames of any link type `table.decode` reads; frames that are not TCP over IP are counted
 * as skipped, as `_frame` counts them. With `cuts` (the uint32 hash cut points of
 * `parallel._cuts`, as bytes) only the connections of share `index` are tracked; the others'
 * frames are only counted. `started`: None, or a list to append the packet number (1-based)
 * of each connection started here to (`parallel.ShareTable.started`). `ignored`: the table's
 * keys of connections its filter left out (their packets are counted, as `_frame` does);
 * `collect`: the number of the connection whose packets Python keeps (-1: none). It also
 * returns after a connection it starts makes the table hold more than `max_open` (that
 * frame handled): Python then finishes some (`ConnectionTable._evict`). */
static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer buf, starts, ends, times, cuts;
    Py_ssize_t first, count, index;
    long lt;
    PyObject *table, *memo_type, *started, *ignored;
    long long packets_before, sweep_mask, collect;
    Py_ssize_t max_open;
    int can_start;
    if (!PyArg_ParseTuple(args, "Oy*y*y*y*nnlOLLny*pOOLn", &table, &buf, &starts, &ends,
                          &times, &first, &count, &lt, &memo_type, &packets_before,
                          &sweep_mask, &index, &cuts, &can_start, &started, &ignored, &collect,
                          &max_open))
        return NULL;
    const uint32_t *cut = cuts.buf;
    const Py_ssize_t ncuts = cuts.len / 4;
    const int shared = cuts.len > 0;
    const int some_ignored = PySet_Check(ignored) && PySet_GET_SIZE(ignored) > 0;
    const unsigned char *b = buf.buf;
    const Py_ssize_t size = buf.len;
    const int64_t *st = starts.buf, *en = ends.buf;
    const double *tm = times.buf;
    Py_ssize_t i = first, tcp_count = 0, skipped = 0;
    PyObject *result = NULL, *flows = NULL, *live = NULL, *addresses = NULL, *memo = NULL,
             *number_obj = NULL;
    long long number = 0;
    if (starts.len < count * 8 || ends.len < count * 8 || times.len < count * 8 || first < 0) {
        PyErr_SetString(PyExc_ValueError, "arrays shorter than count, or a negative start");
        goto done;
    }
    flows = PyObject_GetAttr(table, s_flows);
    live = PyObject_GetAttr(table, s_live);
    addresses = PyObject_GetAttr(table, s_addresses);
    memo = PyObject_GetAttr(table, s_memo);
    number_obj = PyObject_GetAttr(table, s_number);
    if (!flows || !live || !addresses || !memo || !number_obj)
        goto done;
    if (!PyDict_Check(flows) || !PyDict_Check(live) || !PyDict_Check(addresses)) {
        PyErr_SetString(PyExc_TypeError, "the table's flows, live and addresses are dicts");
        goto done;
    }
    number = PyLong_AsLongLong(number_obj);
    if (number == -1 && PyErr_Occurred())
        goto done;
    if (PyType_Check(memo_type))
        find_offsets(&tracker_at, (PyTypeObject *)memo_type);
    for (; i < count; i++) {
        long long packets = packets_before + i + 1;
        if (!(packets & sweep_mask))
            break; /* the table sweeps after this frame: Python's */
        int64_t start = st[i], end = en[i];
        if (start < 0 || end > size || start > end) {
            PyErr_SetString(PyExc_ValueError, "a frame outside its buffer");
            goto done;
        }
        Segment g;
        if (!decode_frame(lt, b + start, (Py_ssize_t)(end - start), &g)) {
            skipped++;
            continue;
        }
        const Py_ssize_t alen = g.alen, klen = 2 * alen + 4;
        const unsigned char *tcp = g.tcp;
        unsigned flags = tcp[13];
        uint32_t sport = u16(tcp), dport = u16(tcp + 2);
        int order = memcmp(g.dst, g.src, alen);
        if (shared) { /* parallel.owner: not this share's connection -> only counted */
            uint64_t a = u32(g.src) ^ u32(g.dst);
            for (Py_ssize_t w = 4; w < alen; w += 4)
                a ^= u32(g.src + w) ^ u32(g.dst + w);
            uint64_t ports = sport ^ dport;
            uint64_t mixed = ((a ^ ports ^ (ports << 16)) * 0x9E3779B1ULL) & 0xFFFFFFFFULL;
            Py_ssize_t owner = 0;
            while (owner < ncuts && cut[owner] <= mixed)
                owner++;
            if (owner != index) {
                tcp_count++;
                continue;
            }
        }
        int swap = order < 0 || (order == 0 && dport < sport);
        unsigned char key[36];
        if (swap) {
            memcpy(key, g.dst, alen);
            memcpy(key + alen, g.src, alen);
            memcpy(key + 2 * alen, tcp + 2, 2);
            memcpy(key + 2 * alen + 2, tcp, 2);
        } else {
            memcpy(key, g.src, alen);
            memcpy(key + alen, g.dst, alen);
            memcpy(key + 2 * alen, tcp, 4);
        }
        PyObject *k = PyBytes_FromStringAndSize((const char *)key, klen);
        if (!k)
            goto done;
        PyObject *entry = PyDict_GetItemWithError(flows, k); /* borrowed */
        Py_DECREF(k);
        if (!entry && PyErr_Occurred())
            goto done;
        if (!entry && some_ignored) { /* `_frame`: a connection the filter left out */
            unsigned char raw[36]; /* the frame's own key: the canonical one unless swapped */
            if (swap) {
                memcpy(raw, key + alen, alen);
                memcpy(raw + alen, key, alen);
                memcpy(raw + 2 * alen, tcp, 4);
            }
            PyObject *rk = PyBytes_FromStringAndSize((const char *)(swap ? raw : key), klen);
            if (!rk)
                goto done;
            int left_out = PySet_Contains(ignored, rk);
            Py_DECREF(rk);
            if (left_out < 0)
                goto done;
            if (left_out) {
                tcp_count++;
                continue;
            }
        }
        if ((flags & 0x12) == 0x02) { /* SYN without ACK: maybe a new connection */
            if (entry || !can_start || (order == 0 && sport == dport))
                break; /* a 4-tuple in use, or a self-connection: Python decides */
            if (start_connection(table, memo, flows, live, addresses, started, &number, packets,
                                 memo_type, &g, key, klen, swap, tm[i], flags))
                goto done;
            tcp_count++;
            if (PyDict_GET_SIZE(live) > max_open) {
                i++;
                break; /* too many open: Python finishes the quietest */
            }
            continue;
        }
        if (!entry)
            break;
        if (!PyList_Check(entry) || PyList_GET_SIZE(entry) < 3)
            break;
        if (collect >= 0) { /* the collected connection's packets: Python keeps them */
            long long its = PyLong_AsLongLong(PyList_GET_ITEM(entry, 2));
            if (its == -1 && PyErr_Occurred())
                goto done;
            if (its == collect)
                break;
        }
        PyObject *tracker = PyList_GET_ITEM(entry, 0);
        int orig_dir = PyObject_IsTrue(PyList_GET_ITEM(entry, 1));
        if (orig_dir < 0)
            goto done;
        int is_orig = orig_dir != swap;
        int moved = 0;
        if ((PyObject *)Py_TYPE(tracker) == memo_type) {
            PyObject *real = get(tracker, s_real, tracker_at.real);
            if (!real)
                goto done;
            Py_DECREF(real);
            if (real == Py_None) {
                moved = step(tracker, is_orig, flags, u32(tcp + 4), u32(tcp + 8),
                             u16(tcp + 14) == 0, g.length, tm[i]);
                if (moved < 0)
                    goto done;
            }
        }
        /* A state nobody met yet, a tracker off the shared states, or a plain tracker: what
         * `_frame` does with this packet, tracker.feed_fields(...), called from here. */
        if (!moved && feed(tracker, tm[i], is_orig, flags, u32(tcp + 4), u32(tcp + 8),
                           u16(tcp + 14), g.length) < 0)
            goto done;
        tcp_count++;
    }
    result = Py_BuildValue("(nnn)", i, tcp_count, skipped);
done:
    if (number_obj) { /* the connections numbered here count, whatever happened after */
        PyObject *type, *value, *trace;
        PyErr_Fetch(&type, &value, &trace); /* (an error so far stays the one raised) */
        PyObject *n_obj = PyLong_FromLongLong(number);
        if (!n_obj || PyObject_SetAttr(table, s_number, n_obj))
            Py_CLEAR(result);
        Py_XDECREF(n_obj);
        if (type) {
            PyErr_Clear();
            PyErr_Restore(type, value, trace);
        }
    }
    Py_XDECREF(flows);
    Py_XDECREF(live);
    Py_XDECREF(addresses);
    Py_XDECREF(memo);
    Py_XDECREF(number_obj);
    PyBuffer_Release(&buf);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&ends);
    PyBuffer_Release(&times);
    PyBuffer_Release(&cuts);
    return result;
}

/* The record walks' three columns (start and end offsets, times), twice as long (4,096 rows
 * the first time): 0, or -1 with MemoryError (the columns as they were, for the caller to
 * free). */
static int grow(int64_t **s, int64_t **e, double **t, Py_ssize_t *cap) {
    Py_ssize_t more = *cap ? *cap * 2 : 4096;
    int64_t *s2 = PyMem_Realloc(*s, more * sizeof **s);
    if (s2)
        *s = s2;
    int64_t *e2 = PyMem_Realloc(*e, more * sizeof **e);
    if (e2)
        *e = e2;
    double *t2 = PyMem_Realloc(*t, more * sizeof **t);
    if (t2)
        *t = t2;
    if (!s2 || !e2 || !t2) {
        PyErr_NoMemory();
        return -1;
    }
    *cap = more;
    return 0;
}

/* walk(buf, pos, big_endian, unit, max_record) -> (starts, ends, times, pos, stop): the
 * records wholly in buf from pos on, as `CaptureFile._pcap_batches` walks them: their data's
 * start and end offsets (int64 bytes), their times (float64 bytes: seconds + fraction * unit,
 * as numpy computes them there), where the walk stopped (the next record's header), and stop:
 * the offset of a record that claims more than max_record bytes, or -1. */
static PyObject *walk(PyObject *self, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t pos, max_record;
    int big;
    double unit;
    if (!PyArg_ParseTuple(args, "y*npdn", &buf, &pos, &big, &unit, &max_record))
        return NULL;
    const unsigned char *b = buf.buf;
    const Py_ssize_t size = buf.len;
    Py_ssize_t stop = -1, count = 0, cap = 0;
    int64_t *s = NULL, *e = NULL;
    double *t = NULL;
    PyObject *result = NULL;
    while (pos >= 0 && pos + 16 <= size) {
        const unsigned char *r = b + pos;
        uint32_t sec, frac, incl;
        if (big) {
            sec = u32(r), frac = u32(r + 4), incl = u32(r + 8);
        } else {
            memcpy(&sec, r, 4), memcpy(&frac, r + 4, 4), memcpy(&incl, r + 8, 4);
        }
        Py_ssize_t end = pos + 16 + (Py_ssize_t)incl;
        if (end > size) {
            if ((Py_ssize_t)incl > max_record)
                stop = pos;
            break;
        }
        if (count == cap && grow(&s, &e, &t, &cap) < 0)
            goto out;
        s[count] = pos + 16;
        e[count] = end;
        t[count] = (double)sec + (double)frac * unit;
        count++;
        pos = end;
    }
    /* (y# of a NULL pointer would be None: no records is three empty bytes objects) */
    result = Py_BuildValue("(y#y#y#nn)", s ? (const char *)s : "", count * 8,
                           e ? (const char *)e : "", count * 8, t ? (const char *)t : "",
                           count * 8, pos, stop);
out:
    PyMem_Free(s);
    PyMem_Free(e);
    PyMem_Free(t);
    PyBuffer_Release(&buf);
    return result;
}

/* The pcapng block walk's reasons to stop (`walk_ng`). */
enum { NG_MORE = 0, NG_PYTHON = 1, NG_LINKTYPE = 2 };

static inline uint32_t rd32(const unsigned char *p, int big) {
    return big ? u32(p)
               : ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

/* walk_ng(buf, pos, big_endian, linktypes, per_second, offsets, max_record) ->
 * (starts, ends, times, pos, linktype, why): the enhanced packet blocks of one read chunk of a
 * pcapng section, from pos on, as `CaptureFile._pcapng` reads them: their data's start and
 * end offsets (int64 bytes) and times (float64 bytes: the 64-bit count / the interface's units
 * per second + its offset, the Python's float operations), all of one link type (`linktype`,
 * -1 when none). The interfaces are the section's so far: linktypes (int32), per_second
 * (float64) and offsets (int64), one entry each. Blocks that the Python skips (unknown
 * types, an EPB too short, of an unknown interface, or whose data overruns it) are skipped.
 * It stops at pos, with why = NG_MORE when the block there is not wholly in buf, NG_PYTHON
 * at a block the Python reads itself (a section or interface header, a simple or obsolete
 * packet block, a length that is corrupt or over max_record), NG_LINKTYPE at a packet of
 * another link type than the ones before (call again from there). */
static PyObject *walk_ng(PyObject *self, PyObject *args) {
    Py_buffer buf, lts, pers, offs;
    Py_ssize_t pos, max_record;
    int big;
    if (!PyArg_ParseTuple(args, "y*npy*y*y*n", &buf, &pos, &big, &lts, &pers, &offs,
                          &max_record))
        return NULL;
    const unsigned char *b = buf.buf;
    const Py_ssize_t size = buf.len;
    const Py_ssize_t n_ifaces = lts.len / 4;
    PyObject *result = NULL;
    if (pers.len / 8 != n_ifaces || offs.len / 8 != n_ifaces) {
        PyErr_SetString(PyExc_ValueError, "walk_ng: one link type, unit and offset per interface");
        goto done;
    }
    const int32_t *lt_of = lts.buf;
    const double *per_second = pers.buf;
    const int64_t *offset = offs.buf;
    Py_ssize_t count = 0, cap = 0;
    int64_t *s = NULL, *e = NULL;
    double *t = NULL;
    long linktype = -1;
    int why = NG_MORE;
    while (pos >= 0) {
        if (pos + 12 > size) {
            why = NG_MORE;
            break;
        }
        const unsigned char *r = b + pos;
        if (r[0] == 0x0a && r[1] == 0x0d && r[2] == 0x0d && r[3] == 0x0a) {
            why = NG_PYTHON; /* a new section: its byte order, its interfaces */
            break;
        }
        uint32_t type = rd32(r, big), blen = rd32(r + 4, big);
        if (blen < 12 || blen % 4 || (Py_ssize_t)blen > max_record) {
            why = NG_PYTHON; /* corrupt: the Python says where */
            break;
        }
        if (pos + (Py_ssize_t)blen > size) {
            why = NG_MORE;
            break;
        }
        if (type == 1 || type == 2 || type == 3) {
            why = NG_PYTHON;
            break;
        }
        if (type == 6 && blen >= 32) {
            uint32_t iface = rd32(r + 8, big), caplen = rd32(r + 20, big);
            if ((Py_ssize_t)iface < n_ifaces && 28 + (uint64_t)caplen <= blen) {
                if (count && lt_of[iface] != linktype) {
                    why = NG_LINKTYPE;
                    break;
                }
                linktype = lt_of[iface];
                if (count == cap && grow(&s, &e, &t, &cap) < 0)
                    goto out;
                uint64_t units = ((uint64_t)rd32(r + 12, big) << 32) | rd32(r + 16, big);
                s[count] = pos + 28;
                e[count] = pos + 28 + caplen;
                t[count] = (double)units / per_second[iface] + (double)offset[iface];
                count++;
            }
        }
        pos += blen;
    }
    result = Py_BuildValue("(y#y#y#nli)", s ? (const char *)s : "", count * 8,
                           e ? (const char *)e : "", count * 8, t ? (const char *)t : "",
                           count * 8, pos, linktype, why);
out:
    PyMem_Free(s);
    PyMem_Free(e);
    PyMem_Free(t);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&lts);
    PyBuffer_Release(&pers);
    PyBuffer_Release(&offs);
    return result;
}

/* quiet(live, now, linger, idle) -> the entries of `live` (number -> [tracker, ...], in start
 * order) to finish at capture time `now`, in that order: quiet more than `linger` seconds and
 * ended, or quiet more than `idle` seconds (`ConnectionTable._sweep`, same float operations). */
static PyObject *quiet(PyObject *self, PyObject *args) {
    PyObject *live;
    double now, linger, idle;
    if (!PyArg_ParseTuple(args, "O!ddd", &PyDict_Type, &live, &now, &linger, &idle))
        return NULL;
    PyObject *out = PyList_New(0);
    if (!out)
        return NULL;
    Py_ssize_t pos = 0;
    PyObject *key, *entry;
    while (PyDict_Next(live, &pos, &key, &entry)) {
        if (!PyList_Check(entry) || PyList_GET_SIZE(entry) < 1) {
            PyErr_SetString(PyExc_TypeError, "a live entry is a list");
            goto fail;
        }
        PyObject *tracker = PyList_GET_ITEM(entry, 0);
        PyObject *end_obj = Py_TYPE(tracker) == tracker_at.type
                                ? get(tracker, s_end, tracker_at.end)
                                : PyObject_GetAttr(tracker, s_end);
        if (!end_obj)
            goto fail;
        double end = PyFloat_AsDouble(end_obj);
        Py_DECREF(end_obj);
        if (end == -1.0 && PyErr_Occurred())
            goto fail;
        if (!(now - end > linger))
            continue;
        int finish = now - end > idle;
        if (!finish) {
            PyObject *ended = PyObject_GetAttr(tracker, s_ended);
            if (!ended)
                goto fail;
            finish = PyObject_IsTrue(ended);
            Py_DECREF(ended);
            if (finish < 0)
                goto fail;
        }
        if (finish && PyList_Append(out, entry))
            goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* ---- row text (`tcpclose.analyze.output`): the per-row part of csv_row, json_row and
 * zeek_row; None where Python must do it (a tail not cached yet, a value to quote, a field
 * missing or of an unexpected type), which it then does. */


/* "host:port", or "[host]:port" for a host with ':' (output.endpoint); NULL + no error: None */
static PyObject *endpoint(PyObject *ep) {
    if (!PyTuple_Check(ep) || PyTuple_GET_SIZE(ep) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(ep, 0)) ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(ep, 1)))
        return NULL;
    PyObject *host = PyTuple_GET_ITEM(ep, 0), *port = PyTuple_GET_ITEM(ep, 1);
    Py_ssize_t colon = PyUnicode_FindChar(host, ':', 0, PyUnicode_GET_LENGTH(host), 1);
    if (colon == -2)
        return NULL;
    return colon >= 0 ? PyUnicode_FromFormat("[%U]:%S", host, port)
                      : PyUnicode_FromFormat("%U:%S", host, port);
}

/* The verdict's field dict and its start and end, or 0 (None: Python's). */
static int verdict_of(PyObject *row, PyObject **number, PyObject **fields, double *start,
                      double *end) {
    PyObject *verdict = PyObject_GetAttr(row, s_verdict_f);
    if (!verdict)
        return -1;
    *fields = PyObject_GetAttr(verdict, s_dict);
    Py_DECREF(verdict);
    if (!*fields)
        return -1;
    *number = PyObject_GetAttr(row, s_number_f);
    if (!*number) {
        Py_CLEAR(*fields);
        return -1;
    }
    PyObject *st = PyDict_Check(*fields) ? PyDict_GetItem(*fields, s_start) : NULL;
    PyObject *en = PyDict_Check(*fields) ? PyDict_GetItem(*fields, s_end_f) : NULL;
    if (!st || !en || !PyFloat_CheckExact(st) || !PyFloat_CheckExact(en) ||
        !PyLong_CheckExact(*number)) {
        Py_CLEAR(*fields);
        Py_CLEAR(*number);
        return 0;
    }
    *start = PyFloat_AS_DOUBLE(st);
    *end = PyFloat_AS_DOUBLE(en);
    return 1;
}

/* The cached tail of the row's shared columns (output._TAILS / _JSON_TAILS), borrowed. */
static PyObject *cached_tail(PyObject *fields, PyObject *tails) {
    PyObject *key = PyTuple_New(10);
    if (!key)
        return NULL;
    for (int j = 0; j < 10; j++) {
        PyObject *v = PyDict_GetItem(fields, s_tail_names[j]);
        if (!v) {
            Py_DECREF(key);
            return NULL;
        }
        Py_INCREF(v);
        PyTuple_SET_ITEM(key, j, v);
    }
    PyObject *tail = PyDict_GetItemWithError(tails, key);
    Py_DECREF(key);
    return tail;
}

/* text_row(kind, row, tails[, tail_only]): kind 0 csv_row, 1 json_row (tails: the caches),
 * 2 zeek_row; with tail_only, the text without the row's number (`output.csv_tail`,
 * `json_tail`, `zeek_blank`: the CSV after "number,", the JSON after "number": N, the Zeek
 * line with the uid of number 0). */
static PyObject *text_row(PyObject *self, PyObject *args) {
    int kind, tail_only = 0;
    PyObject *row, *tails;
    if (!PyArg_ParseTuple(args, "iOO!|p", &kind, &row, &PyDict_Type, &tails, &tail_only))
        return NULL;
    PyObject *number = NULL, *fields = NULL, *o = NULL, *r = NULL, *result = NULL;
    char *a = NULL, *b = NULL;
    double start, end;
    int got = verdict_of(row, &number, &fields, &start, &end);
    if (got <= 0)
        return got < 0 ? NULL : Py_NewRef(Py_None);
    PyObject *oe = PyDict_GetItem(fields, s_originator);
    PyObject *re = PyDict_GetItem(fields, s_responder);
    if (!oe || !re)
        goto none;
    if (kind == 2) { /* zeek: every column from this row */
        PyObject *z[6];
        for (int j = 0; j < 6; j++) {
            z[j] = PyDict_GetItem(fields, s_zeek_names[j]);
            if (!z[j])
                goto none;
        }
        if (!PyTuple_Check(oe) || PyTuple_GET_SIZE(oe) != 2 || !PyTuple_Check(re) ||
            PyTuple_GET_SIZE(re) != 2 || !PyUnicode_Check(z[2]) || !PyUnicode_Check(z[3]))
            goto none;
        long long n = tail_only ? 0 : PyLong_AsLongLong(number);
        if (n < 0 || (n == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            goto none;
        }
        char uid[19];
        static const char digits[] =
            "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        uid[0] = 'C';
        uid[18] = 0;
        for (int j = 17; j >= 1; j--) {
            uid[j] = digits[n % 62];
            n /= 62;
        }
        if (n) /* more than 17 digits: Python's */
            goto none;
        a = PyOS_double_to_string(start, 'f', 6, 0, NULL);
        b = PyOS_double_to_string(end - start, 'f', 6, 0, NULL);
        if (!a || !b)
            goto done;
        int empty = PyUnicode_GET_LENGTH(z[3]) == 0; /* Zeek's "(empty)" */
        result = PyUnicode_FromFormat(
            "%s\t%s\t%S\t%S\t%S\t%S\ttcp\t%s\t%S\t%S\t%U\t%s%U\t%S\t%S\n", a, uid,
            PyTuple_GET_ITEM(oe, 0), PyTuple_GET_ITEM(oe, 1), PyTuple_GET_ITEM(re, 0),
            PyTuple_GET_ITEM(re, 1), b, z[0], z[1], z[2], empty ? "(empty)" : "", z[3], z[4],
            z[5]);
        goto done;
    }
    PyObject *tail = cached_tail(fields, tails);
    if (!tail)
        goto none_or_error;
    o = endpoint(oe);
    r = o ? endpoint(re) : NULL;
    if (!r)
        goto none_or_error;
    if (kind == 0) {
        /* a value csv.writer would quote: Python's */
        for (int side = 0; side < 2; side++) {
            Py_ssize_t len;
            const char *u = PyUnicode_AsUTF8AndSize(side ? r : o, &len);
            if (!u)
                goto done;
            if (memchr(u, ',', len) || memchr(u, '"', len) || memchr(u, '\r', len) ||
                memchr(u, '\n', len))
                goto none;
        }
        a = PyOS_double_to_string(start, 'f', 6, 0, NULL);
        b = PyOS_double_to_string(end - start, 'f', 6, 0, NULL);
        if (a && b && tail_only)
            result = PyUnicode_FromFormat("%U,%U,%s,%s,%U", o, r, a, b, tail);
        else if (a && b)
            result = PyUnicode_FromFormat("%S,%U,%U,%s,%s,%U", number, o, r, a, b, tail);
    } else {
        a = PyOS_double_to_string(start, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        b = PyOS_double_to_string(end - start, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (a && b && tail_only)
            result = PyUnicode_FromFormat("\"originator\": \"%U\", \"responder\": \"%U\", "
                                          "\"start\": %s, \"duration\": %s, %U",
                                          o, r, a, b, tail);
        else if (a && b)
            result = PyUnicode_FromFormat("{\"number\": %S, \"originator\": \"%U\", "
                                          "\"responder\": \"%U\", \"start\": %s, "
                                          "\"duration\": %s, %U",
                                          number, o, r, a, b, tail);
    }
    goto done;
none_or_error:
    if (PyErr_Occurred())
        goto done;
none:
    result = Py_NewRef(Py_None);
done:
    if (a)
        PyMem_Free(a);
    if (b)
        PyMem_Free(b);
    Py_XDECREF(o);
    Py_XDECREF(r);
    Py_XDECREF(number);
    Py_XDECREF(fields);
    return result;
}

/* `MemoTracker.verdict()` for a tracker on the shared states whose state's verdict fields
 * are cached (`_Node.verdict`): the memo's hit count, then a new `verdict_type` object
 * whose __dict__ is filled as the Python fills it. NULL without an error: Python's (a real
 * tracker, a state whose verdict was never asked, slots not found); with one: failure. */
static PyObject *memo_verdict(PyObject *tracker, PyObject *verdict_type) {
    const Offsets *at = &tracker_at;
    if ((PyObject *)Py_TYPE(tracker) != (PyObject *)at->type || at->real < 0 || at->node < 0 ||
        at->memo < 0 || at->misses < 0 || at->originator < 0 || at->responder < 0 ||
        at->start < 0 || at->end < 0 || !PyType_Check(verdict_type))
        return NULL;
    PyObject *real = in_slot(tracker, at->real), *node = in_slot(tracker, at->node);
    PyObject *memo = in_slot(tracker, at->memo), *misses = in_slot(tracker, at->misses);
    PyObject *fields[4] = {in_slot(tracker, at->originator), in_slot(tracker, at->responder),
                           in_slot(tracker, at->start), in_slot(tracker, at->end)};
    if (real != Py_None || !node || !memo || !misses || !fields[0] || !fields[1] ||
        !fields[2] || !fields[3])
        return NULL;
    find_offsets(&node_at, Py_TYPE(node));
    if (node_at.verdict < 0 || node_at.tracker < 0)
        return NULL;
    PyObject *rest = in_slot(node, node_at.verdict), *state = in_slot(node, node_at.tracker);
    if (!rest || !state || !PyDict_CheckExact(rest))
        return NULL; /* never asked: Python computes and caches it */
    /* self._memo.hits += node.tracker.packets - self._misses */
    PyObject *packets = PyObject_GetAttr(state, s_packets_f);
    PyObject *hits = packets ? PyObject_GetAttr(memo, s_hits) : NULL;
    PyObject *more = hits ? PyNumber_Subtract(packets, misses) : NULL;
    PyObject *sum = more ? PyNumber_Add(hits, more) : NULL;
    int failed = !sum || PyObject_SetAttr(memo, s_hits, sum);
    Py_XDECREF(packets);
    Py_XDECREF(hits);
    Py_XDECREF(more);
    Py_XDECREF(sum);
    if (failed)
        return NULL;
    /* object.__new__(verdict_type), as the Python makes it (its dict initialised there) */
    static PyObject *no_args = NULL;
    if (!no_args && !(no_args = PyTuple_New(0)))
        return NULL;
    PyObject *verdict = PyBaseObject_Type.tp_new((PyTypeObject *)verdict_type, no_args, NULL);
    PyObject *d = verdict ? PyObject_GenericGetDict(verdict, NULL) : NULL;
    if (!d) {
        Py_XDECREF(verdict);
        return NULL;
    }
    PyObject *names[4] = {s_originator, s_responder, s_start, s_end_f};
    for (int j = 0; j < 4 && !failed; j++)
        failed = PyDict_SetItem(d, names[j], fields[j]) < 0;
    failed = failed || PyDict_Update(d, rest) < 0;
    Py_DECREF(d);
    if (failed)
        Py_CLEAR(verdict);
    return verdict;
}

/* `row_type(number, verdict)` for Row, a dataclass with slots: its two slots set directly
 * (its frozen __init__ sets each through object.__setattr__); any other type is called. */
static PyObject *new_row(PyObject *row_type, PyObject *number, PyObject *verdict) {
    if ((PyTypeObject *)row_type != row_type_at && PyType_Check(row_type)) {
        Py_INCREF(row_type); /* kept, as in find_offsets */
        Py_XDECREF(row_type_at);
        row_type_at = (PyTypeObject *)row_type;
        row_number_at = offset_of(row_type_at, s_number_f);
        row_verdict_at = offset_of(row_type_at, s_verdict_f);
    }
    if (row_number_at < 0 || row_verdict_at < 0 || (PyTypeObject *)row_type != row_type_at)
        return PyObject_CallFunctionObjArgs(row_type, number, verdict, NULL);
    PyObject *row = row_type_at->tp_alloc(row_type_at, 0);
    if (row) {
        put(row, row_number_at, number);
        put(row, row_verdict_at, verdict);
    }
    return row;
}

/* finish(table, entries, row_type, verdict_type): `ConnectionTable._finish` for each entry,
 * in order: forget it (its 4-tuple's entry if it is still this tracker's, its live number),
 * then hand `row_type(number, tracker.verdict())` to the table's `_done` (the verdict of a
 * MemoTracker made here when its state's is known: `memo_verdict`). */
static PyObject *finish(PyObject *self, PyObject *args) {
    PyObject *table, *entries, *row_type, *verdict_type;
    if (!PyArg_ParseTuple(args, "OO!OO", &table, &PyList_Type, &entries, &row_type,
                          &verdict_type))
        return NULL;
    PyObject *flows = PyObject_GetAttr(table, s_flows);
    PyObject *live = PyObject_GetAttr(table, s_live);
    PyObject *done = PyObject_GetAttr(table, s_done);
    PyObject *result = NULL;
    if (!flows || !live || !done)
        goto out;
    if (!PyDict_Check(flows) || !PyDict_Check(live)) {
        PyErr_SetString(PyExc_TypeError, "the table's flows and live are dicts");
        goto out;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(entries); i++) {
        PyObject *entry = PyList_GET_ITEM(entries, i);
        if (!PyList_Check(entry) || PyList_GET_SIZE(entry) != 4) {
            PyErr_SetString(PyExc_TypeError, "an entry is a list of 4");
            goto out;
        }
        Py_INCREF(entry); /* (the dicts may hold the last other reference) */
        PyObject *tracker = PyList_GET_ITEM(entry, 0), *number = PyList_GET_ITEM(entry, 2),
                 *key = PyList_GET_ITEM(entry, 3);
        int failed = 0;
        PyObject *current = PyDict_GetItemWithError(flows, key);
        if (current) {
            if (PyList_Check(current) && PyList_GET_SIZE(current) > 0 &&
                PyList_GET_ITEM(current, 0) == tracker)
                failed = PyDict_DelItem(flows, key);
        } else if (PyErr_Occurred()) {
            failed = 1;
        }
        failed = failed || PyDict_DelItem(live, number);
        PyObject *verdict = NULL;
        if (!failed) {
            verdict = memo_verdict(tracker, verdict_type);
            if (!verdict && !PyErr_Occurred())
                verdict = PyObject_CallMethodNoArgs(tracker, s_verdict_m);
        }
        PyObject *row = verdict ? new_row(row_type, number, verdict) : NULL;
        PyObject *r = row ? PyObject_CallOneArg(done, row) : NULL;
        Py_XDECREF(verdict);
        Py_XDECREF(row);
        Py_DECREF(entry);
        if (!r)
            goto out;
        Py_DECREF(r);
    }
    result = Py_NewRef(Py_None);
out:
    Py_XDECREF(flows);
    Py_XDECREF(live);
    Py_XDECREF(done);
    return result;
}

/* time_of_day(t) -> "HH:MM:SS.ffffff" (`output.time_of_day`: the microseconds rounded half
 * to even, as datetime.fromtimestamp rounds them; a million carries into the seconds), or
 * None outside 0 <= t < 2.5e11 (Python's datetime decides there). */
static PyObject *time_of_day(PyObject *self, PyObject *arg) {
    double t = PyFloat_AsDouble(arg);
    if (t == -1.0 && PyErr_Occurred())
        return NULL;
    if (!(t >= 0.0 && t < 2.5e11))
        Py_RETURN_NONE;
    double whole;
    double micro = modf(t, &whole) * 1e6;
    double rounded = round(micro);
    if (fabs(micro - rounded) == 0.5)
        rounded = 2.0 * round(micro / 2.0);
    long long us = (long long)rounded, second = (long long)whole;
    if (us >= 1000000) {
        us -= 1000000;
        second += 1;
    }
    second %= 86400;
    char text[64];
    snprintf(text, sizeof text, "%02lld:%02lld:%02lld.%06lld", second / 3600, second / 60 % 60,
             second % 60, us);
    return PyUnicode_FromString(text);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "Track the common frames of a chunk; stop at one for Python."},
    {"walk", walk, METH_VARARGS, "The pcap records of a chunk: starts, ends, times."},
    {"walk_ng", walk_ng, METH_VARARGS, "A pcapng chunk's packet blocks of one link type."},
    {"text_row", text_row, METH_VARARGS, "A row's CSV, JSON or Zeek text (None: Python's)."},
    {"finish", finish, METH_VARARGS, "Finish these connections, in order (their rows out)."},
    {"time_of_day", time_of_day, METH_O, "Epoch seconds -> HH:MM:SS.ffffff (UTC)."},
    {"quiet", quiet, METH_VARARGS, "The live connections a sweep finishes, in start order."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastscan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fastscan(void) {
    s_real = PyUnicode_InternFromString("_real");
    s_node = PyUnicode_InternFromString("_node");
    s_base_o = PyUnicode_InternFromString("base_o");
    s_base_r = PyUnicode_InternFromString("base_r");
    s_end = PyUnicode_InternFromString("end");
    s_next = PyUnicode_InternFromString("next");
    s_tracker = PyUnicode_InternFromString("tracker");
    s_first = PyUnicode_InternFromString("first_is_originator");
    s_feed = PyUnicode_InternFromString("feed_fields");
    s_address = PyUnicode_InternFromString("_address");
    s_flows = PyUnicode_InternFromString("_flows");
    s_live = PyUnicode_InternFromString("_live");
    s_addresses = PyUnicode_InternFromString("_addresses");
    s_memo = PyUnicode_InternFromString("_memo");
    s_number = PyUnicode_InternFromString("_next_number");
    s_ended = PyUnicode_InternFromString("ended");
    s_done = PyUnicode_InternFromString("_done");
    s_verdict_m = PyUnicode_InternFromString("verdict");
    s_misses = PyUnicode_InternFromString("_misses");
    s_hits = PyUnicode_InternFromString("hits");
    s_misses_memo = PyUnicode_InternFromString("misses");
    s_roots = PyUnicode_InternFromString("_roots");
    s_packets_f = PyUnicode_InternFromString("packets");
    if (!s_misses || !s_hits || !s_misses_memo || !s_roots || !s_packets_f)
        return NULL;
    if (!s_done || !s_verdict_m)
        return NULL;
    s_number_f = PyUnicode_InternFromString("number");
    s_verdict_f = PyUnicode_InternFromString("verdict");
    s_dict = PyUnicode_InternFromString("__dict__");
    s_originator = PyUnicode_InternFromString("originator");
    s_responder = PyUnicode_InternFromString("responder");
    s_start = PyUnicode_InternFromString("start");
    s_end_f = s_end;
    static const char *tail_names[10] = {
        "bytes_originator", "bytes_responder", "packets", "first_fin", "first_rst",
        "data_after_fin", "termination", "reason", "conn_state", "history"};
    for (int j = 0; j < 10; j++)
        if (!(s_tail_names[j] = PyUnicode_InternFromString(tail_names[j])))
            return NULL;
    static const char *zeek_names[6] = {"bytes_originator", "bytes_responder", "conn_state",
                                        "history", "packets_originator", "packets_responder"};
    for (int j = 0; j < 6; j++)
        if (!(s_zeek_names[j] = PyUnicode_InternFromString(zeek_names[j])))
            return NULL;
    if (!s_number_f || !s_verdict_f || !s_dict || !s_originator || !s_responder || !s_start)
        return NULL;
    if (!s_real || !s_node || !s_base_o || !s_base_r || !s_end || !s_next || !s_tracker ||
        !s_first || !s_feed || !s_address || !s_flows || !s_live || !s_addresses || !s_memo ||
        !s_number || !s_ended)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    /* tcpclose.analyze.compiled refuses a build whose API differs from the Python's. */
    if (m && PyModule_AddIntConstant(m, "API", FASTSCAN_API) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* The analyser's compiled inner loop: the common packet of a capture, without Python.
 *
 * `scan(...)` walks frames start..count of one read chunk (frame i is buf[starts[i]:ends[i]],
 * its time times[i]) and does for each what `ConnectionTable._frame` does for a plain IPv4
 * TCP segment of a connection already in the table whose tracker is a `MemoTracker` on the
 * shared states: decode the headers, find the connection by its canonical key, and move the
 * tracker to the next shared state. It stops, returning the frame's index, at the first frame
 * that needs Python: anything but plain IPv4 (options, fragments, other link types, cut
 * frames), a SYN without ACK (a connection may start), a connection not in the table, a
 * tracker off the shared states (`_real` set) or a state never met (a memo miss), and the
 * frames after which the table sweeps. Python handles that frame (`_frame`) and calls again
 * from the next one: the results are the Python path's, frame for frame (the tests compare
 * the two on every capture they make).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static PyObject *s_real, *s_node, *s_base_o, *s_base_r, *s_end, *s_next;

static inline uint32_t u32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint32_t u16(const unsigned char *p) { return ((uint32_t)p[0] << 8) | p[1]; }

/* scan(buf, starts, ends, times, first, count, at_net, at_proto, flows, memo_type,
 *      packets_before, sweep_mask, index, cuts) -> index of the first frame not handled
 * (count: all). With `cuts` (the uint32 hash cut points of `parallel._cuts`, as bytes) only
 * the connections of share `index` are tracked; the others' frames are only counted. */
static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer buf, starts, ends, times, cuts;
    Py_ssize_t first, count, at_net, at_proto, index;
    PyObject *flows, *memo_type;
    long long packets_before, sweep_mask;
    if (!PyArg_ParseTuple(args, "y*y*y*y*nnnnO!OLLny*", &buf, &starts, &ends, &times, &first,
                          &count, &at_net, &at_proto, &PyDict_Type, &flows, &memo_type,
                          &packets_before, &sweep_mask, &index, &cuts))
        return NULL;
    const uint32_t *cut = cuts.buf;
    const Py_ssize_t ncuts = cuts.len / 4;
    const int shared = cuts.len > 0;
    const unsigned char *b = buf.buf;
    const Py_ssize_t size = buf.len;
    const int64_t *st = starts.buf, *en = ends.buf;
    const double *tm = times.buf;
    Py_ssize_t i = first;
    PyObject *result = NULL;
    if (starts.len < count * 8 || ends.len < count * 8 || times.len < count * 8) {
        PyErr_SetString(PyExc_ValueError, "arrays shorter than count");
        goto done;
    }
    for (; i < count; i++) {
        long long packets = packets_before + i + 1;
        if (!(packets & sweep_mask))
            break; /* the table sweeps after this frame: Python's */
        int64_t start = st[i], end = en[i];
        int64_t n = start + at_net;
        if (start < 0 || end > size || n + 40 > end)
            break;
        if (at_proto >= 0 && u16(b + start + at_proto) != 0x0800)
            break;
        const unsigned char *h = b + n;
        if (h[0] != 0x45 || h[9] != 6 || ((h[6] & 0x1F) | h[7]))
            break;
        unsigned flags = h[33];
        if ((flags & 0x12) == 0x02)
            break; /* SYN without ACK: maybe a new connection */
        long ip_len = (long)u16(h + 2) - 20;
        if (ip_len < 0)
            ip_len = (long)(end - (n + 20));
        long length = ip_len - (long)((h[32] >> 4) << 2);
        if (length < 0)
            length = 0;
        uint32_t src = u32(h + 12), dst = u32(h + 16);
        uint32_t sport = u16(h + 20), dport = u16(h + 22);
        if (shared) { /* parallel.owner: not this share's connection -> only counted */
            uint64_t ports = sport ^ dport;
            uint64_t mixed = (((uint64_t)(src ^ dst) ^ ports ^ (ports << 16)) * 0x9E3779B1ULL) &
                             0xFFFFFFFFULL;
            Py_ssize_t owner = 0;
            while (owner < ncuts && cut[owner] <= mixed)
                owner++;
            if (owner != index)
                continue;
        }
        int swap = dst < src || (dst == src && dport < sport);
        unsigned char key[12];
        if (swap) {
            memcpy(key, h + 16, 4);
            memcpy(key + 4, h + 12, 4);
            memcpy(key + 8, h + 22, 2);
            memcpy(key + 10, h + 20, 2);
        } else {
            memcpy(key, h + 12, 12);
        }
        PyObject *k = PyBytes_FromStringAndSize((const char *)key, 12);
        if (!k)
            goto done;
        PyObject *entry = PyDict_GetItemWithError(flows, k); /* borrowed */
        Py_DECREF(k);
        if (!entry) {
            if (PyErr_Occurred())
                goto done;
            break;
        }
        if (!PyList_Check(entry) || PyList_GET_SIZE(entry) < 2)
            break;
        PyObject *tracker = PyList_GET_ITEM(entry, 0);
        if ((PyObject *)Py_TYPE(tracker) != memo_type)
            break;
        int orig_dir = PyObject_IsTrue(PyList_GET_ITEM(entry, 1));
        if (orig_dir < 0)
            goto done;
        int is_orig = orig_dir != swap;
        PyObject *real = PyObject_GetAttr(tracker, s_real);
        if (!real)
            goto done;
        Py_DECREF(real);
        if (real != Py_None)
            break;
        uint32_t seq = u32(h + 24), ack = u32(h + 28);
        PyObject *base_obj = PyObject_GetAttr(tracker, is_orig ? s_base_o : s_base_r);
        if (!base_obj)
            goto done;
        uint32_t base;
        if (base_obj == Py_None) { /* this side's first packet: its numbers start here */
            Py_DECREF(base_obj);
            PyObject *seq_obj = PyLong_FromUnsignedLong(seq);
            if (!seq_obj)
                goto done;
            int failed = PyObject_SetAttr(tracker, is_orig ? s_base_o : s_base_r, seq_obj);
            Py_DECREF(seq_obj);
            if (failed)
                goto done;
            base = seq;
        } else {
            base = (uint32_t)PyLong_AsUnsignedLongMask(base_obj);
            Py_DECREF(base_obj);
        }
        uint32_t rel_ack = 0;
        if (flags & 0x10) {
            PyObject *peer = PyObject_GetAttr(tracker, is_orig ? s_base_r : s_base_o);
            if (!peer)
                goto done;
            if (peer != Py_None)
                rel_ack = ack - (uint32_t)PyLong_AsUnsignedLongMask(peer);
            Py_DECREF(peer);
        }
        PyObject *node = PyObject_GetAttr(tracker, s_node);
        if (!node)
            goto done;
        PyObject *next = PyObject_GetAttr(node, s_next);
        Py_DECREF(node);
        if (!next)
            goto done;
        /* (is_orig, flags & 0x17, relative seq, relative ack, window 0, length) */
        PyObject *tkey = Py_BuildValue("(OIkkOl)", is_orig ? Py_True : Py_False, flags & 0x17,
                                       (unsigned long)(uint32_t)(seq - base),
                                       (unsigned long)rel_ack,
                                       u16(h + 34) == 0 ? Py_True : Py_False, length);
        if (!tkey) {
            Py_DECREF(next);
            goto done;
        }
        PyObject *nxt = PyDict_Check(next) ? PyDict_GetItemWithError(next, tkey) : NULL;
        Py_DECREF(tkey);
        Py_DECREF(next);
        if (!nxt) {
            if (PyErr_Occurred())
                goto done;
            break; /* a state nobody met yet: Python computes it */
        }
        PyObject *t = PyFloat_FromDouble(tm[i]);
        if (!t)
            goto done;
        int failed = PyObject_SetAttr(tracker, s_node, nxt) || PyObject_SetAttr(tracker, s_end, t);
        Py_DECREF(t);
        if (failed)
            goto done;
    }
    result = PyLong_FromSsize_t(i);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&ends);
    PyBuffer_Release(&times);
    PyBuffer_Release(&cuts);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "Track the plain frames of a chunk; stop at one for Python."},
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
    if (!s_real || !s_node || !s_base_o || !s_base_r || !s_end || !s_next)
        return NULL;
    return PyModule_Create(&module);
}

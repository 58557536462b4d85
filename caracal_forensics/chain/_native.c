/* Optional hashing kernel for chain verification: SHA-256 and HMAC-SHA256 over Arrow
 * string arrays, and the microsecond-recovery loop, using OpenSSL's libcrypto (SHA-NI
 * where the CPU has it). The pure-Python reference (digest.py) and DuckDB SQL compute the
 * same values; tests check all three agree. The GIL is released while hashing so that
 * two threads hash on two cores.
 *
 * Arrow layout handled: utf8 (int32 offsets) and large_utf8 (int64 offsets), any array
 * offset, optional validity bitmap. Results are new buffers at offset 0.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co.: no per-call EVP overhead */
#include <Python.h>
#include <openssl/sha.h>
#include <string.h>

typedef struct {
    Py_buffer validity; /* len 0 when absent */
    Py_buffer offsets;
    Py_buffer data;
    Py_ssize_t offset; /* array offset, in elements */
    int large;          /* 64-bit offsets */
} StrArray;

static const char HEX[] = "0123456789abcdef";

static int str_array_open(PyObject *validity, PyObject *offsets, PyObject *data,
                          Py_ssize_t offset, int large, StrArray *out) {
    memset(out, 0, sizeof(*out));
    out->offset = offset;
    out->large = large;
    if (validity != Py_None &&
        PyObject_GetBuffer(validity, &out->validity, PyBUF_SIMPLE) < 0)
        return -1;
    if (PyObject_GetBuffer(offsets, &out->offsets, PyBUF_SIMPLE) < 0)
        return -1;
    if (PyObject_GetBuffer(data, &out->data, PyBUF_SIMPLE) < 0)
        return -1;
    return 0;
}

static void str_array_close(StrArray *a) {
    if (a->validity.obj) PyBuffer_Release(&a->validity);
    if (a->offsets.obj) PyBuffer_Release(&a->offsets);
    if (a->data.obj) PyBuffer_Release(&a->data);
}

static int str_check(const StrArray *a, Py_ssize_t n) {
    Py_ssize_t width = a->large ? 8 : 4;
    if (a->offsets.len < (a->offset + n + 1) * width) {
        PyErr_SetString(PyExc_ValueError, "offsets buffer too short");
        return -1;
    }
    if (a->validity.obj && a->validity.len * 8 < a->offset + n) {
        PyErr_SetString(PyExc_ValueError, "validity buffer too short");
        return -1;
    }
    /* the last offset bounds every value */
    Py_ssize_t last = a->large ? (Py_ssize_t)((const int64_t *)a->offsets.buf)[a->offset + n]
                               : ((const int32_t *)a->offsets.buf)[a->offset + n];
    if (n > 0 && last > a->data.len) {
        PyErr_SetString(PyExc_ValueError, "data buffer too short");
        return -1;
    }
    return 0;
}

static inline int str_valid(const StrArray *a, Py_ssize_t i) {
    if (!a->validity.obj) return 1;
    Py_ssize_t bit = a->offset + i;
    return (((const uint8_t *)a->validity.buf)[bit >> 3] >> (bit & 7)) & 1;
}

static inline const unsigned char *str_at(const StrArray *a, Py_ssize_t i, size_t *len) {
    Py_ssize_t j = a->offset + i, start, end;
    if (a->large) {
        start = ((const int64_t *)a->offsets.buf)[j];
        end = ((const int64_t *)a->offsets.buf)[j + 1];
    } else {
        start = ((const int32_t *)a->offsets.buf)[j];
        end = ((const int32_t *)a->offsets.buf)[j + 1];
    }
    *len = (size_t)(end - start);
    return (const unsigned char *)a->data.buf + start;
}

static inline void to_hex(const unsigned char *digest, char *out) {
    for (int k = 0; k < 32; k++) {
        out[2 * k] = HEX[digest[k] >> 4];
        out[2 * k + 1] = HEX[digest[k] & 15];
    }
}

/* (validity bytes | None, int32 offsets bytes, data bytes) for n hex digests. */
static PyObject *hex_result(Py_ssize_t n, PyObject **validity, PyObject **offsets,
                            PyObject **data) {
    *offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * 4);
    *data = PyBytes_FromStringAndSize(NULL, n * 64);
    *validity = PyBytes_FromStringAndSize(NULL, (n + 7) / 8);
    if (!*offsets || !*data || !*validity) return NULL;
    int32_t *off = (int32_t *)PyBytes_AS_STRING(*offsets);
    for (Py_ssize_t i = 0; i <= n; i++) off[i] = (int32_t)(i * 64);
    memset(PyBytes_AS_STRING(*validity), 0, (n + 7) / 8);
    return *data;
}

static inline void set_valid(PyObject *validity, Py_ssize_t i) {
    ((uint8_t *)PyBytes_AS_STRING(validity))[i >> 3] |= (uint8_t)(1u << (i & 7));
}

/* sha256_hex(n, validity, offsets, data, offset, large) */
static PyObject *sha256_hex(PyObject *self, PyObject *args) {
    Py_ssize_t n, offset;
    PyObject *v, *o, *d;
    int large;
    if (!PyArg_ParseTuple(args, "nOOOnp", &n, &v, &o, &d, &offset, &large)) return NULL;
    StrArray a;
    PyObject *rv = NULL, *ro = NULL, *rd = NULL;
    if (str_array_open(v, o, d, offset, large, &a) < 0 || str_check(&a, n) < 0) goto done;
    if (!hex_result(n, &rv, &ro, &rd)) goto done;
    {
        char *out = PyBytes_AS_STRING(rd);
        unsigned char digest[32];
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!str_valid(&a, i)) {
                memset(out + i * 64, '0', 64);
                continue;
            }
            size_t len;
            const unsigned char *p = str_at(&a, i, &len);
            SHA256(p, len, digest);
            to_hex(digest, out + i * 64);
            set_valid(rv, i);
        }
        Py_END_ALLOW_THREADS
    }
    str_array_close(&a);
    return Py_BuildValue("(NNN)", rv, ro, rd);
done:
    str_array_close(&a);
    Py_XDECREF(rv);
    Py_XDECREF(ro);
    Py_XDECREF(rd);
    return NULL;
}

static void hmac_states(const unsigned char *key, size_t key_len, SHA256_CTX *inner,
                        SHA256_CTX *outer) {
    unsigned char block[64], pad[64];
    memset(block, 0, 64);
    if (key_len > 64) {
        SHA256(key, key_len, block);
    } else {
        memcpy(block, key, key_len);
    }
    for (int k = 0; k < 64; k++) pad[k] = block[k] ^ 0x36;
    SHA256_Init(inner);
    SHA256_Update(inner, pad, 64);
    for (int k = 0; k < 64; k++) pad[k] = block[k] ^ 0x5c;
    SHA256_Init(outer);
    SHA256_Update(outer, pad, 64);
}

/* hmac_hex(key, n, content(v, o, d, offset, large), prev(v, o, d, offset, large)):
 * HMAC-SHA256(key, content + "|" + (prev or "")); NULL where content is NULL. */
static PyObject *hmac_hex(PyObject *self, PyObject *args) {
    Py_buffer key;
    Py_ssize_t n, c_off, p_off;
    PyObject *cv, *co, *cd, *pv, *po, *pd;
    int c_large, p_large;
    if (!PyArg_ParseTuple(args, "y*nOOOnpOOOnp", &key, &n, &cv, &co, &cd, &c_off, &c_large,
                          &pv, &po, &pd, &p_off, &p_large))
        return NULL;
    StrArray c, p;
    memset(&p, 0, sizeof(p));
    PyObject *rv = NULL, *ro = NULL, *rd = NULL;
    if (str_array_open(cv, co, cd, c_off, c_large, &c) < 0 || str_check(&c, n) < 0 ||
        str_array_open(pv, po, pd, p_off, p_large, &p) < 0 || str_check(&p, n) < 0)
        goto done;
    if (!hex_result(n, &rv, &ro, &rd)) goto done;
    {
        SHA256_CTX inner0, outer0, ctx;
        hmac_states(key.buf, (size_t)key.len, &inner0, &outer0);
        char *out = PyBytes_AS_STRING(rd);
        unsigned char digest[32];
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!str_valid(&c, i)) {
                memset(out + i * 64, '0', 64);
                continue;
            }
            size_t len;
            const unsigned char *s = str_at(&c, i, &len);
            ctx = inner0;
            SHA256_Update(&ctx, s, len);
            SHA256_Update(&ctx, "|", 1);
            if (str_valid(&p, i)) {
                s = str_at(&p, i, &len);
                SHA256_Update(&ctx, s, len);
            }
            SHA256_Final(digest, &ctx);
            ctx = outer0;
            SHA256_Update(&ctx, digest, 32);
            SHA256_Final(digest, &ctx);
            to_hex(digest, out + i * 64);
            set_valid(rv, i);
        }
        Py_END_ALLOW_THREADS
    }
    str_array_close(&c);
    str_array_close(&p);
    PyBuffer_Release(&key);
    return Py_BuildValue("(NNN)", rv, ro, rd);
done:
    str_array_close(&c);
    str_array_close(&p);
    PyBuffer_Release(&key);
    Py_XDECREF(rv);
    Py_XDECREF(ro);
    Py_XDECREF(rd);
    return NULL;
}

/* content_hex(n, fields, jsonb_flags, micros_validity, micros_data, micros_offset):
 * SHA-256 of FORMAT.md's preimage, fed field by field (no concatenated copy): each field
 * (NULL text -> "", NULL or "" jsonb -> "null") then 0x1F, then N = micros * 1000 in
 * decimal. ``fields`` is a sequence of (validity, offsets, data, offset, large) tuples;
 * NULL where occurred_at is NULL. */
static PyObject *content_hex(PyObject *self, PyObject *args) {
    Py_ssize_t n, m_off;
    PyObject *fields, *flags, *mv, *md;
    if (!PyArg_ParseTuple(args, "nOOOOn", &n, &fields, &flags, &mv, &md, &m_off)) return NULL;
    PyObject *seq = PySequence_Fast(fields, "fields must be a sequence");
    if (!seq) return NULL;
    Py_ssize_t nf = PySequence_Fast_GET_SIZE(seq);
    StrArray *arrays = PyMem_Calloc((size_t)(nf ? nf : 1), sizeof(StrArray));
    int *jsonb = PyMem_Calloc((size_t)(nf ? nf : 1), sizeof(int));
    Py_buffer mvalid, mdata;
    memset(&mvalid, 0, sizeof(mvalid));
    memset(&mdata, 0, sizeof(mdata));
    PyObject *rv = NULL, *ro = NULL, *rd = NULL, *result = NULL;
    Py_ssize_t opened = 0;
    if (!arrays || !jsonb) {
        PyErr_NoMemory();
        goto done;
    }
    if (PySequence_Size(flags) != nf) {
        PyErr_SetString(PyExc_ValueError, "one jsonb flag per field");
        goto done;
    }
    for (Py_ssize_t f = 0; f < nf; f++) {
        PyObject *t = PySequence_Fast_GET_ITEM(seq, f), *v, *o, *d, *flag;
        Py_ssize_t off;
        int large;
        if (!PyArg_ParseTuple(t, "OOOnp", &v, &o, &d, &off, &large)) goto done;
        if (str_array_open(v, o, d, off, large, &arrays[f]) < 0) {
            opened = f + 1;
            goto done;
        }
        opened = f + 1;
        if (str_check(&arrays[f], n) < 0) goto done;
        flag = PySequence_GetItem(flags, f);
        if (!flag) goto done;
        jsonb[f] = PyObject_IsTrue(flag);
        Py_DECREF(flag);
    }
    if (mv != Py_None && PyObject_GetBuffer(mv, &mvalid, PyBUF_SIMPLE) < 0) goto done;
    if (PyObject_GetBuffer(md, &mdata, PyBUF_SIMPLE) < 0) goto done;
    if (mdata.len < (m_off + n) * 8 || (mvalid.obj && mvalid.len * 8 < m_off + n)) {
        PyErr_SetString(PyExc_ValueError, "occurred_at buffers too short");
        goto done;
    }
    if (!hex_result(n, &rv, &ro, &rd)) goto done;
    {
        char *out = PyBytes_AS_STRING(rd);
        const int64_t *micros = (const int64_t *)mdata.buf + m_off;
        unsigned char digest[32];
        char num[32];
        Py_BEGIN_ALLOW_THREADS
        SHA256_CTX ctx;
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_ssize_t bit = m_off + i;
            if (mvalid.obj && !((((const uint8_t *)mvalid.buf)[bit >> 3] >> (bit & 7)) & 1)) {
                memset(out + i * 64, '0', 64);
                continue;
            }
            SHA256_Init(&ctx);
            for (Py_ssize_t f = 0; f < nf; f++) {
                size_t len = 0;
                const unsigned char *p = NULL;
                if (str_valid(&arrays[f], i)) p = str_at(&arrays[f], i, &len);
                if (jsonb[f] && len == 0) {
                    SHA256_Update(&ctx, "null\x1f", 5);
                    continue;
                }
                if (len) SHA256_Update(&ctx, p, len);
                SHA256_Update(&ctx, "\x1f", 1);
            }
            /* N = micros * 1000: the micros' digits then "000" (exact, no overflow) */
            int64_t v = micros[i];
            int neg = v < 0, k = (int)sizeof(num);
            uint64_t u = neg ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            num[--k] = '0';
            num[--k] = '0';
            num[--k] = '0';
            if (u == 0) {
                k += 2; /* N is "0", not "0000" */
            } else {
                while (u) {
                    num[--k] = (char)('0' + u % 10);
                    u /= 10;
                }
                if (neg) num[--k] = '-';
            }
            SHA256_Update(&ctx, num + k, sizeof(num) - (size_t)k);
            SHA256_Final(digest, &ctx);
            to_hex(digest, out + i * 64);
            set_valid(rv, i);
        }
        Py_END_ALLOW_THREADS
    }
    result = Py_BuildValue("(NNN)", rv, ro, rd);
    rv = ro = rd = NULL;
done:
    for (Py_ssize_t f = 0; f < opened; f++) str_array_close(&arrays[f]);
    PyMem_Free(arrays);
    PyMem_Free(jsonb);
    if (mvalid.obj) PyBuffer_Release(&mvalid);
    if (mdata.obj) PyBuffer_Release(&mdata);
    Py_DECREF(seq);
    Py_XDECREF(rv);
    Py_XDECREF(ro);
    Py_XDECREF(rd);
    return result;
}

/* recover(prefix, target32, width) -> k or -1: the k in [0, 10**width) for which
 * SHA-256(prefix + "%0{width}d" % k + "000") == target. The prefix is hashed once. */
static PyObject *recover(PyObject *self, PyObject *args) {
    Py_buffer prefix, target;
    int width;
    if (!PyArg_ParseTuple(args, "y*y*i", &prefix, &target, &width)) return NULL;
    if (target.len != 32 || width < 1 || width > 6) {
        PyBuffer_Release(&prefix);
        PyBuffer_Release(&target);
        PyErr_SetString(PyExc_ValueError, "target must be 32 bytes, width 1..6");
        return NULL;
    }
    long found = -1, count = 1;
    for (int k = 0; k < width; k++) count *= 10;
    Py_BEGIN_ALLOW_THREADS
    SHA256_CTX base, ctx;
    unsigned char digest[32], suffix[9];
    SHA256_Init(&base);
    SHA256_Update(&base, prefix.buf, (size_t)prefix.len);
    memset(suffix, '0', sizeof(suffix)); /* width digits, then "000" */
    for (long k = 0; k < count; k++) {
        long v = k;
        for (int d = width - 1; d >= 0; d--) {
            suffix[d] = (unsigned char)('0' + v % 10);
            v /= 10;
        }
        ctx = base;
        SHA256_Update(&ctx, suffix, (size_t)width + 3);
        SHA256_Final(digest, &ctx);
        if (memcmp(digest, target.buf, 32) == 0) {
            found = k;
            break;
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&prefix);
    PyBuffer_Release(&target);
    return PyLong_FromLong(found);
}

static PyMethodDef METHODS[] = {
    {"sha256_hex", sha256_hex, METH_VARARGS, "Hex SHA-256 of each value of a string array."},
    {"hmac_hex", hmac_hex, METH_VARARGS, "Hex HMAC-SHA256 of content|prev per row."},
    {"content_hex", content_hex, METH_VARARGS, "Hex content_sha256 from the field columns."},
    {"recover", recover, METH_VARARGS, "Microsecond recovery for one event."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, METHODS};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&MODULE); }

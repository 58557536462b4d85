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
    /* Dictionary-encoded (a snapshot's repeating columns read as they are stored): row i
     * is value idx[offset + i] of the dictionary at values_offset; validity is the
     * indices'. NULL idx: a plain string array. */
    Py_buffer indices;
    const int32_t *idx;
    Py_ssize_t values_offset, n_values;
} StrArray;

static const char HEX[] = "0123456789abcdef";

/* 1 for every byte that is not a lowercase hex digit. */
static const unsigned char NOT_LOWER_HEX[256] = {
    [0 ... 255] = 1,
    ['0'] = 0, ['1'] = 0, ['2'] = 0, ['3'] = 0, ['4'] = 0, ['5'] = 0, ['6'] = 0, ['7'] = 0,
    ['8'] = 0, ['9'] = 0, ['a'] = 0, ['b'] = 0, ['c'] = 0, ['d'] = 0, ['e'] = 0, ['f'] = 0,
};

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
    if (a->indices.obj) PyBuffer_Release(&a->indices);
}

/* Makes a (opened by str_array_open as the dictionary's values, offset = values_offset)
 * a dictionary-encoded array of n rows: int32 indices from row offset, each in range. */
static int str_array_dictionary(StrArray *a, PyObject *indices, Py_ssize_t offset,
                                Py_ssize_t n_values, Py_ssize_t n) {
    Py_ssize_t width = a->large ? 8 : 4;
    a->values_offset = a->offset;
    a->n_values = n_values;
    if (n_values < 0 || a->offsets.len < (a->values_offset + n_values + 1) * width) {
        PyErr_SetString(PyExc_ValueError, "dictionary offsets buffer too short");
        return -1;
    }
    Py_ssize_t last = a->large ? (Py_ssize_t)((const int64_t *)a->offsets.buf)[a->values_offset + n_values]
                               : ((const int32_t *)a->offsets.buf)[a->values_offset + n_values];
    if (last > a->data.len) {
        PyErr_SetString(PyExc_ValueError, "dictionary data buffer too short");
        return -1;
    }
    if (PyObject_GetBuffer(indices, &a->indices, PyBUF_SIMPLE) < 0) return -1;
    a->offset = offset;
    if (offset < 0 || a->indices.len < (offset + n) * 4 ||
        (a->validity.obj && a->validity.len * 8 < offset + n)) {
        PyErr_SetString(PyExc_ValueError, "dictionary indices buffer too short");
        return -1;
    }
    a->idx = (const int32_t *)a->indices.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t bit = offset + i;
        if (a->validity.obj &&
            !((((const uint8_t *)a->validity.buf)[bit >> 3] >> (bit & 7)) & 1))
            continue; /* a NULL row's index is never read */
        if (a->idx[offset + i] < 0 || a->idx[offset + i] >= n_values) {
            PyErr_SetString(PyExc_ValueError, "dictionary index out of range");
            return -1;
        }
    }
    return 0;
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
    Py_ssize_t j = a->idx ? a->values_offset + a->idx[a->offset + i] : a->offset + i;
    Py_ssize_t start, end;
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

/* HMAC-SHA256(key, content + "|" + prev) from the key's precomputed pad states. */
static inline void chain_hmac(const SHA256_CTX *inner0, const SHA256_CTX *outer0,
                              const unsigned char *c, size_t c_len, const unsigned char *p,
                              size_t p_len, unsigned char digest[32]) {
    SHA256_CTX ctx = *inner0;
    SHA256_Update(&ctx, c, c_len);
    SHA256_Update(&ctx, "|", 1);
    if (p_len) SHA256_Update(&ctx, p, p_len);
    SHA256_Final(digest, &ctx);
    ctx = *outer0;
    SHA256_Update(&ctx, digest, 32);
    SHA256_Final(digest, &ctx);
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
        SHA256_CTX inner0, outer0;
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
            size_t p_len = 0;
            const unsigned char *ps = str_valid(&p, i) ? str_at(&p, i, &p_len) : NULL;
            chain_hmac(&inner0, &outer0, s, len, ps, p_len, digest);
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

/* The inputs of the content hash: the hashed field columns and occurred_at (int64
 * micros). Opened from (fields, jsonb_flags, micros_validity, micros_data, micros_offset):
 * ``fields`` is a sequence of (validity, offsets, data, offset, large, indices,
 * index_offset, dictionary_length) tuples; indices None for a plain string array, else
 * offsets and data are the dictionary's and validity the indices'. */
typedef struct {
    StrArray *arrays;
    int *jsonb;
    Py_ssize_t nf, opened;
    Py_buffer mvalid, mdata;
    const int64_t *micros;
    Py_ssize_t m_off;
} Content;

static void content_close(Content *in) {
    for (Py_ssize_t f = 0; f < in->opened; f++) str_array_close(&in->arrays[f]);
    PyMem_Free(in->arrays);
    PyMem_Free(in->jsonb);
    if (in->mvalid.obj) PyBuffer_Release(&in->mvalid);
    if (in->mdata.obj) PyBuffer_Release(&in->mdata);
    memset(in, 0, sizeof(*in));
}

static int content_open(Content *in, Py_ssize_t n, PyObject *fields, PyObject *flags,
                        PyObject *mv, PyObject *md, Py_ssize_t m_off) {
    memset(in, 0, sizeof(*in));
    in->m_off = m_off;
    PyObject *seq = PySequence_Fast(fields, "fields must be a sequence");
    if (!seq) return -1;
    Py_ssize_t nf = PySequence_Fast_GET_SIZE(seq);
    in->nf = nf;
    in->arrays = PyMem_Calloc((size_t)(nf ? nf : 1), sizeof(StrArray));
    in->jsonb = PyMem_Calloc((size_t)(nf ? nf : 1), sizeof(int));
    if (!in->arrays || !in->jsonb) {
        PyErr_NoMemory();
        goto fail;
    }
    if (PySequence_Size(flags) != nf) {
        PyErr_SetString(PyExc_ValueError, "one jsonb flag per field");
        goto fail;
    }
    for (Py_ssize_t f = 0; f < nf; f++) {
        PyObject *t = PySequence_Fast_GET_ITEM(seq, f), *v, *o, *d, *ix, *flag;
        Py_ssize_t off, ix_off, n_values;
        int large;
        if (!PyArg_ParseTuple(t, "OOOnpOnn", &v, &o, &d, &off, &large, &ix, &ix_off, &n_values))
            goto fail;
        in->opened = f + 1;
        if (ix == Py_None) {
            if (str_array_open(v, o, d, off, large, &in->arrays[f]) < 0) goto fail;
            if (str_check(&in->arrays[f], n) < 0) goto fail;
        } else if (str_array_open(v, o, d, off, large, &in->arrays[f]) < 0 ||
                   str_array_dictionary(&in->arrays[f], ix, ix_off, n_values, n) < 0) {
            goto fail;
        }
        flag = PySequence_GetItem(flags, f);
        if (!flag) goto fail;
        in->jsonb[f] = PyObject_IsTrue(flag);
        Py_DECREF(flag);
    }
    if (mv != Py_None && PyObject_GetBuffer(mv, &in->mvalid, PyBUF_SIMPLE) < 0) goto fail;
    if (PyObject_GetBuffer(md, &in->mdata, PyBUF_SIMPLE) < 0) goto fail;
    if (m_off < 0 || in->mdata.len < (m_off + n) * 8 ||
        (in->mvalid.obj && in->mvalid.len * 8 < m_off + n)) {
        PyErr_SetString(PyExc_ValueError, "occurred_at buffers too short");
        goto fail;
    }
    in->micros = (const int64_t *)in->mdata.buf + m_off;
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    content_close(in);
    return -1;
}

static inline int content_valid(const Content *in, Py_ssize_t i) {
    if (!in->mvalid.obj) return 1;
    Py_ssize_t bit = in->m_off + i;
    return (((const uint8_t *)in->mvalid.buf)[bit >> 3] >> (bit & 7)) & 1;
}

/* SHA-256 of FORMAT.md's preimage of row i, fed field by field (no concatenated copy):
 * each field (NULL text -> "", NULL or "" jsonb -> "null") then 0x1F, then
 * N = micros * 1000 in decimal. */
static void content_digest(const Content *in, Py_ssize_t i, unsigned char digest[32]) {
    SHA256_CTX ctx;
    char num[32];
    /* The preimage is gathered into one buffer and hashed in one call: many small
     * SHA256_Update calls cost more than the copy (typical events are under 1 KiB). */
    unsigned char buf[4096];
    size_t used = 0;
    SHA256_Init(&ctx);
    for (Py_ssize_t f = 0; f < in->nf; f++) {
        size_t len = 0;
        const unsigned char *p = NULL;
        if (str_valid(&in->arrays[f], i)) p = str_at(&in->arrays[f], i, &len);
        if (in->jsonb[f] && len == 0) {
            p = (const unsigned char *)"null";
            len = 4;
        }
        if (used + len + 1 > sizeof(buf)) {
            SHA256_Update(&ctx, buf, used);
            used = 0;
            if (len + 1 > sizeof(buf)) {
                SHA256_Update(&ctx, p, len);
                len = 0;
            }
        }
        if (len) memcpy(buf + used, p, len);
        used += len;
        buf[used++] = 0x1f;
    }
    if (used) SHA256_Update(&ctx, buf, used);
    /* N = micros * 1000: the micros' digits then "000" (exact, no overflow) */
    int64_t v = in->micros[i];
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
}

/* content_hex(n, fields, jsonb_flags, micros_validity, micros_data, micros_offset):
 * the hex content hash of every row; NULL where occurred_at is NULL. */
static PyObject *content_hex(PyObject *self, PyObject *args) {
    Py_ssize_t n, m_off;
    PyObject *fields, *flags, *mv, *md;
    if (!PyArg_ParseTuple(args, "nOOOOn", &n, &fields, &flags, &mv, &md, &m_off)) return NULL;
    Content in;
    if (content_open(&in, n, fields, flags, mv, md, m_off) < 0) return NULL;
    PyObject *rv = NULL, *ro = NULL, *rd = NULL;
    if (!hex_result(n, &rv, &ro, &rd)) {
        content_close(&in);
        Py_XDECREF(rv);
        Py_XDECREF(ro);
        Py_XDECREF(rd);
        return NULL;
    }
    char *out = PyBytes_AS_STRING(rd);
    unsigned char digest[32];
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!content_valid(&in, i)) {
            memset(out + i * 64, '0', 64);
            continue;
        }
        content_digest(&in, i, digest);
        to_hex(digest, out + i * 64);
        set_valid(rv, i);
    }
    Py_END_ALLOW_THREADS
    content_close(&in);
    return Py_BuildValue("(NNN)", rv, ro, rd);
}

/* Whether string i of a is exactly the 64 lowercase hex digits of digest, or (fold) is
 * once its letters are lower-cased: how the exhaustive pipeline compares a stored HMAC
 * (hex in either case verifies there). */
static inline int hex_equals(const StrArray *a, Py_ssize_t i, const unsigned char digest[32],
                             int fold) {
    if (!str_valid(a, i)) return 0;
    size_t len;
    const unsigned char *s = str_at(a, i, &len);
    if (len != 64) return 0;
    char hex[64];
    to_hex(digest, hex);
    if (!fold) return memcmp(s, hex, 64) == 0;
    for (size_t k = 0; k < 64; k++)
        if ((s[k] >= 'A' && s[k] <= 'F' ? s[k] + ('a' - 'A') : s[k]) != (unsigned char)hex[k])
            return 0;
    return 1;
}

/* Whether string i of a is neither NULL nor empty. */
static inline int str_present(const StrArray *a, Py_ssize_t i) {
    size_t len = 0;
    if (!str_valid(a, i)) return 0;
    str_at(a, i, &len);
    return len > 0;
}

/* Whether the stored HMAC i of a holds against digest: exactly its lowercase hex; in a
 * wrong key's pass (wrong_key), there and failing even once lower-cased. */
static inline int hmac_holds(const StrArray *a, Py_ssize_t i, const unsigned char digest[32],
                             int wrong_key) {
    return wrong_key ? str_present(a, i) && !hex_equals(a, i, digest, 1)
                     : hex_equals(a, i, digest, 0);
}

/* Whether string i of a is 64 lowercase hex digits (or, with empty_ok, empty). */
static inline int lower_hex(const StrArray *a, Py_ssize_t i, int empty_ok) {
    if (!str_valid(a, i)) return 0;
    size_t len;
    const unsigned char *s = str_at(a, i, &len);
    if (len == 0) return empty_ok;
    if (len != 64) return 0;
    /* No early exit and no branches per character: hex digits are random, so a
     * per-character branch mispredicts about once in three and cost more than SHA. */
    unsigned char bad = 0;
    for (size_t k = 0; k < 64; k++) bad |= NOT_LOWER_HEX[s[k]];
    return !bad;
}

/* row_check(key | None, check_content, has_prev, wrong_key, n, fields, jsonb_flags,
 *           micros_validity, micros_data, micros_offset, content(v, o, d, offset, large),
 *           hmac(...), prev(...)) -> int
 * The first row whose stored content_sha256 is not exactly (lowercase hex) the
 * recomputed one (with check_content; else merely not 64 characters), or, with a key and
 * has_prev, whose stored chain_hmac is not exactly HMAC-SHA256(key, content + "|" +
 * (prev or "")) (with wrong_key: is missing, or is it once lower-cased); -1 when every
 * row holds. The clean pass of verify: it proves rows right, never explains why one is
 * not. */
static PyObject *row_check(PyObject *self, PyObject *args) {
    PyObject *key_obj, *fields, *flags, *mv, *md, *cv, *co, *cd, *hv, *ho, *hd, *pv, *po, *pd;
    Py_ssize_t n, m_off, c_off, h_off, p_off;
    int c_large, h_large, p_large, check_content, has_prev, wrong_key;
    if (!PyArg_ParseTuple(args, "OpppnOOOOnOOOnpOOOnpOOOnp", &key_obj, &check_content,
                          &has_prev, &wrong_key, &n, &fields, &flags, &mv, &md, &m_off, &cv, &co, &cd,
                          &c_off, &c_large, &hv, &ho, &hd, &h_off, &h_large, &pv, &po, &pd,
                          &p_off, &p_large))
        return NULL;
    Py_buffer key;
    memset(&key, 0, sizeof(key));
    if (key_obj != Py_None && PyObject_GetBuffer(key_obj, &key, PyBUF_SIMPLE) < 0) return NULL;
    StrArray c, h, p;
    memset(&c, 0, sizeof(c));
    memset(&h, 0, sizeof(h));
    memset(&p, 0, sizeof(p));
    Content in;
    memset(&in, 0, sizeof(in));
    PyObject *result = NULL;
    if (str_array_open(cv, co, cd, c_off, c_large, &c) < 0 || str_check(&c, n) < 0 ||
        str_array_open(hv, ho, hd, h_off, h_large, &h) < 0 || str_check(&h, n) < 0 ||
        str_array_open(pv, po, pd, p_off, p_large, &p) < 0 || str_check(&p, n) < 0 ||
        content_open(&in, n, fields, flags, mv, md, m_off) < 0)
        goto done;
    {
        Py_ssize_t bad = -1;
        int keyed = key.obj != NULL && has_prev;
        SHA256_CTX inner0, outer0;
        Py_BEGIN_ALLOW_THREADS
        if (keyed) hmac_states(key.buf, (size_t)key.len, &inner0, &outer0);
        unsigned char digest[32];
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!content_valid(&in, i)) {
                bad = i;
                break;
            }
            size_t len;
            if (check_content) {
                content_digest(&in, i, digest);
                if (!hex_equals(&c, i, digest, 0)) {
                    bad = i;
                    break;
                }
            } else if (!lower_hex(&c, i, 0)) {
                bad = i;
                break;
            }
            /* a stored prev the exhaustive path would lower-case first is not proven here */
            if (str_valid(&p, i) && !lower_hex(&p, i, 1)) {
                bad = i;
                break;
            }
            if (!keyed) continue;
            const unsigned char *s = str_at(&c, i, &len);
            size_t p_len = 0;
            const unsigned char *ps = str_valid(&p, i) ? str_at(&p, i, &p_len) : NULL;
            chain_hmac(&inner0, &outer0, s, len, ps, p_len, digest);
            if (!hmac_holds(&h, i, digest, wrong_key)) {
                bad = i;
                break;
            }
        }
        Py_END_ALLOW_THREADS
        result = PyLong_FromSsize_t(bad);
    }
done:
    content_close(&in);
    str_array_close(&c);
    str_array_close(&h);
    str_array_close(&p);
    if (key.obj) PyBuffer_Release(&key);
    return result;
}

/* --- the clean pass's chain follower --------------------------------------------------
 * Per zone: the last seq and content hash seen, so that rows arriving with every zone's
 * seqs consecutive (zones may interleave: a table dump in id order) are linked on the
 * way without sorting. Also a 64-bit hash of every event id, to prove ids unique. */

typedef struct {
    char *zone; /* owned copy; NULL marks a free slot */
    size_t zlen;
    uint64_t hash;
    int64_t first_seq, last_seq, count;
    char last_c[64];
} ZoneSlot;

typedef struct {
    ZoneSlot *slots;
    size_t cap, used; /* cap: a power of two */
    ZoneSlot *last;   /* the previous row's zone */
    uint64_t *ids;
    size_t n_ids, cap_ids;
} Follower;

static uint64_t fnv1a(const unsigned char *s, size_t len) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t k = 0; k < len; k++) {
        h ^= s[k];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static void follower_free(PyObject *capsule) {
    Follower *f = PyCapsule_GetPointer(capsule, "caracal.follower");
    if (!f) return;
    for (size_t k = 0; k < f->cap; k++) free(f->slots[k].zone);
    free(f->slots);
    free(f->ids);
    free(f);
}

static PyObject *follower_new(PyObject *self, PyObject *noargs) {
    Follower *f = calloc(1, sizeof(Follower));
    if (!f) return PyErr_NoMemory();
    f->cap = 16;
    f->slots = calloc(f->cap, sizeof(ZoneSlot));
    if (!f->slots) {
        free(f);
        return PyErr_NoMemory();
    }
    PyObject *capsule = PyCapsule_New(f, "caracal.follower", follower_free);
    if (!capsule) {
        free(f->slots);
        free(f);
    }
    return capsule;
}

static ZoneSlot *slot_find(Follower *f, const unsigned char *z, size_t len, uint64_t h) {
    size_t k = (size_t)h & (f->cap - 1);
    while (f->slots[k].zone) {
        ZoneSlot *s = &f->slots[k];
        if (s->hash == h && s->zlen == len && memcmp(s->zone, z, len) == 0) return s;
        k = (k + 1) & (f->cap - 1);
    }
    return &f->slots[k]; /* free */
}

static int follower_grow(Follower *f) {
    size_t cap = f->cap * 2;
    ZoneSlot *old = f->slots, *slots = calloc(cap, sizeof(ZoneSlot));
    if (!slots) return -1;
    size_t old_cap = f->cap;
    f->slots = slots;
    f->cap = cap;
    for (size_t k = 0; k < old_cap; k++) {
        if (!old[k].zone) continue;
        ZoneSlot *s = slot_find(f, (const unsigned char *)old[k].zone, old[k].zlen, old[k].hash);
        *s = old[k];
    }
    free(old);
    f->last = NULL;
    return 0;
}

/* follow(follower, key | None, has_prev, wrong_key, n, zone(v, o, d, offset, large),
 *        seq_validity, seq_data, seq_offset, content(...), prev(...), id(...), hmac(...))
 *   -> (bad, new_zone_rows, on_hmac)
 * Links each row to the previous row of its zone: its seq must be the next one and (with
 * has_prev) its prev_content_sha256 the predecessor's content hash; a zone's first row
 * must be seq 1 with an empty prev, or start later (unanchored: listed in
 * new_zone_rows). Without a prev column the link is the HMAC: with a key, chain_hmac
 * must be HMAC-SHA256(key, content + "|" + the predecessor's content hash, "" at seq 1),
 * unchecked at an unanchored start. bad is the first row that breaks this (or lacks
 * zone, seq or a 64-digit content hash), else -1; on_hmac: it broke on its HMAC alone.
 * wrong_key turns the HMAC's test round: every HMAC checked must be present and fail
 * (compared lower-cased), as it does under a wrong key. */
static PyObject *follow(PyObject *self, PyObject *args) {
    PyObject *capsule, *key_obj, *zv, *zo, *zd, *sv, *sd, *cv, *co, *cd, *pv, *po, *pd, *iv,
        *io, *id, *hv, *ho, *hd;
    Py_ssize_t n, z_off, s_off, c_off, p_off, i_off, h_off;
    int z_large, c_large, p_large, i_large, h_large, has_prev, wrong_key;
    if (!PyArg_ParseTuple(args, "OOppnOOOnpOOnOOOnpOOOnpOOOnpOOOnp", &capsule, &key_obj,
                          &has_prev, &wrong_key, &n, &zv, &zo, &zd, &z_off, &z_large, &sv, &sd, &s_off,
                          &cv, &co, &cd, &c_off, &c_large, &pv, &po, &pd, &p_off, &p_large,
                          &iv, &io, &id, &i_off, &i_large, &hv, &ho, &hd, &h_off, &h_large))
        return NULL;
    Follower *f = PyCapsule_GetPointer(capsule, "caracal.follower");
    if (!f) return NULL;
    Py_buffer key;
    memset(&key, 0, sizeof(key));
    if (key_obj != Py_None && PyObject_GetBuffer(key_obj, &key, PyBUF_SIMPLE) < 0) return NULL;
    int keyed = key.obj != NULL && !has_prev;
    SHA256_CTX inner0, outer0;
    if (keyed) hmac_states(key.buf, (size_t)key.len, &inner0, &outer0);
    StrArray z, c, p, ids, hm;
    memset(&hm, 0, sizeof(hm));
    memset(&z, 0, sizeof(z));
    memset(&c, 0, sizeof(c));
    memset(&p, 0, sizeof(p));
    memset(&ids, 0, sizeof(ids));
    Py_buffer svalid, sdata;
    memset(&svalid, 0, sizeof(svalid));
    memset(&sdata, 0, sizeof(sdata));
    PyObject *result = NULL, *starts = NULL;
    if (str_array_open(zv, zo, zd, z_off, z_large, &z) < 0 || str_check(&z, n) < 0 ||
        str_array_open(cv, co, cd, c_off, c_large, &c) < 0 || str_check(&c, n) < 0 ||
        str_array_open(pv, po, pd, p_off, p_large, &p) < 0 || str_check(&p, n) < 0 ||
        str_array_open(iv, io, id, i_off, i_large, &ids) < 0 || str_check(&ids, n) < 0 ||
        str_array_open(hv, ho, hd, h_off, h_large, &hm) < 0 || str_check(&hm, n) < 0)
        goto done;
    if (sv != Py_None && PyObject_GetBuffer(sv, &svalid, PyBUF_SIMPLE) < 0) goto done;
    if (PyObject_GetBuffer(sd, &sdata, PyBUF_SIMPLE) < 0) goto done;
    if (s_off < 0 || sdata.len < (s_off + n) * 8 || (svalid.obj && svalid.len * 8 < s_off + n)) {
        PyErr_SetString(PyExc_ValueError, "chain_seq buffers too short");
        goto done;
    }
    if (f->n_ids + (size_t)n > f->cap_ids) {
        size_t cap = f->cap_ids ? f->cap_ids : 65536;
        while (cap < f->n_ids + (size_t)n) cap *= 2;
        uint64_t *grown = realloc(f->ids, cap * sizeof(uint64_t));
        if (!grown) {
            PyErr_NoMemory();
            goto done;
        }
        f->ids = grown;
        f->cap_ids = cap;
    }
    starts = PyList_New(0);
    if (!starts) goto done;
    {
        const int64_t *seqs = (const int64_t *)sdata.buf + s_off;
        Py_ssize_t bad = -1;
        int on_hmac = 0;
        unsigned char digest[32];
        for (Py_ssize_t i = 0; i < n; i++) {
            const char *pred = NULL; /* the content hash this row's HMAC chains to */
            size_t pred_len = 0;
            Py_ssize_t bit = s_off + i;
            size_t zlen, clen, plen = 0, ilen = 0;
            if (!str_valid(&z, i) || !str_valid(&c, i) ||
                (svalid.obj && !((((const uint8_t *)svalid.buf)[bit >> 3] >> (bit & 7)) & 1))) {
                bad = i;
                break;
            }
            const unsigned char *zs = str_at(&z, i, &zlen), *cs = str_at(&c, i, &clen);
            const unsigned char *ps = str_valid(&p, i) ? str_at(&p, i, &plen) : NULL;
            const unsigned char *is = str_valid(&ids, i) ? str_at(&ids, i, &ilen) : NULL;
            int64_t seq = seqs[i];
            if (clen != 64) {
                bad = i;
                break;
            }
            ZoneSlot *s = f->last;
            if (!s || s->zlen != zlen || memcmp(s->zone, zs, zlen) != 0) {
                uint64_t h = fnv1a(zs, zlen);
                s = slot_find(f, zs, zlen, h);
                if (!s->zone) { /* a zone's first row */
                    if (seq < 1 || (seq == 1 && plen != 0)) {
                        bad = i;
                        break;
                    }
                    if (seq == 1) pred = "";
                    if ((f->used + 1) * 2 > f->cap) {
                        if (follower_grow(f) < 0) {
                            PyErr_NoMemory();
                            goto done;
                        }
                        s = slot_find(f, zs, zlen, h);
                    }
                    s->zone = malloc(zlen ? zlen : 1);
                    if (!s->zone) {
                        PyErr_NoMemory();
                        goto done;
                    }
                    memcpy(s->zone, zs, zlen);
                    s->zlen = zlen;
                    s->hash = h;
                    s->first_seq = seq;
                    s->last_seq = seq - 1;
                    s->count = 0;
                    f->used++;
                    PyObject *row = PyLong_FromSsize_t(i);
                    if (!row || PyList_Append(starts, row) < 0) {
                        Py_XDECREF(row);
                        goto done;
                    }
                    Py_DECREF(row);
                    goto take;
                }
            }
            if (seq != s->last_seq + 1 ||
                (has_prev && (plen != 64 || memcmp(ps, s->last_c, 64) != 0))) {
                bad = i;
                break;
            }
            pred = s->last_c;
            pred_len = 64;
        take:
            if (keyed && pred) {
                chain_hmac(&inner0, &outer0, cs, 64, (const unsigned char *)pred, pred_len,
                           digest);
                if (!hmac_holds(&hm, i, digest, wrong_key)) {
                    bad = i;
                    on_hmac = 1;
                    break;
                }
            }
            s->last_seq = seq;
            s->count++;
            memcpy(s->last_c, cs, 64);
            f->last = s;
            f->ids[f->n_ids++] = is ? fnv1a(is, ilen) : 0;
        }
        result = Py_BuildValue("(nOO)", bad, starts, on_hmac ? Py_True : Py_False);
    }
done:
    Py_XDECREF(starts);
    str_array_close(&z);
    str_array_close(&c);
    str_array_close(&p);
    str_array_close(&ids);
    str_array_close(&hm);
    if (key.obj) PyBuffer_Release(&key);
    if (svalid.obj) PyBuffer_Release(&svalid);
    if (sdata.obj) PyBuffer_Release(&sdata);
    return result;
}

/* follower_zones(follower) -> [(zone bytes, events, first_seq, last_seq, last content)] */
static PyObject *follower_zones(PyObject *self, PyObject *capsule) {
    Follower *f = PyCapsule_GetPointer(capsule, "caracal.follower");
    if (!f) return NULL;
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    for (size_t k = 0; k < f->cap; k++) {
        ZoneSlot *s = &f->slots[k];
        if (!s->zone) continue;
        PyObject *t = Py_BuildValue("(y#LLLs#)", s->zone, (Py_ssize_t)s->zlen,
                                    (long long)s->count, (long long)s->first_seq,
                                    (long long)s->last_seq, s->last_c, (Py_ssize_t)64);
        if (!t || PyList_Append(out, t) < 0) {
            Py_XDECREF(t);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(t);
    }
    return out;
}

/* follower_ids_unique(follower) -> bool: no two event ids share a 64-bit hash (a
 * collision only sends verify down its exhaustive path). The hashes are sorted by their
 * top 33 bits (three LSD radix passes of 11 bits: the counters stay in L1), so equal
 * hashes end up in one run of equal top bits, where they are compared pairwise (runs are
 * almost always one value long). */
static PyObject *follower_ids_unique(PyObject *self, PyObject *capsule) {
    Follower *f = PyCapsule_GetPointer(capsule, "caracal.follower");
    if (!f) return NULL;
    size_t n = f->n_ids;
    int unique = 1;
    if (n > 1) {
        enum { BITS = 11, DIGITS = 1 << BITS, LOW = 64 - 3 * BITS };
        uint64_t *tmp = malloc(n * sizeof(uint64_t));
        if (!tmp) return PyErr_NoMemory();
        Py_BEGIN_ALLOW_THREADS
        size_t count[DIGITS];
        uint64_t *a = f->ids, *b = tmp;
        for (int shift = LOW; shift < 64; shift += BITS) {
            memset(count, 0, sizeof(count));
            for (size_t k = 0; k < n; k++) count[(a[k] >> shift) & (DIGITS - 1)]++;
            size_t total = 0;
            for (size_t d = 0; d < DIGITS; d++) {
                size_t c = count[d];
                count[d] = total;
                total += c;
            }
            for (size_t k = 0; k < n; k++) b[count[(a[k] >> shift) & (DIGITS - 1)]++] = a[k];
            uint64_t *t = a;
            a = b;
            b = t;
        }
        for (size_t start = 0, k = 1; k <= n && unique; k++) {
            if (k < n && (a[k] >> LOW) == (a[start] >> LOW)) continue;
            for (size_t i = start; i < k && unique; i++) /* the run a[start:k] */
                for (size_t j = i + 1; j < k; j++)
                    if (a[i] == a[j]) {
                        unique = 0;
                        break;
                    }
            start = k;
        }
        Py_END_ALLOW_THREADS
        free(tmp);
    }
    return PyBool_FromLong(unique);
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
    {"row_check", row_check, METH_VARARGS, "First row whose content hash or HMAC fails."},
    {"follower_new", follower_new, METH_NOARGS, "A new chain follower (the clean pass)."},
    {"follow", follow, METH_VARARGS, "Link rows to their zone's previous row."},
    {"follower_zones", follower_zones, METH_O, "Per zone: events, seq range, head."},
    {"follower_ids_unique", follower_ids_unique, METH_O, "Whether no event id repeats."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, METHODS};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&MODULE); }

/* Optional C kernel: PostgreSQL jsonb::text rendering of JSON text (FORMAT.md section 3).
 *
 * The pure-Python reference is caracal_forensics/jsonb.py; this file renders exactly what
 * ``jsonb.dumps(jsonb.loads(text))`` renders and rejects exactly what it rejects (tested
 * against it and against a real PostgreSQL in tests/test_jsonb_native.py).
 *
 *   canonical(text: str | bytes) -> str | None
 *       The jsonb text; ValueError on input jsonb rejects; None when the document nests
 *       deeper than MAX_DEPTH (the caller decides with the Python reference).
 *   parse_row(raw: bytes, spec: tuple, template: dict) -> dict | None
 *   Columns(spec): add(raw) -> bool, add_values(values), finish() -> Arrow buffers
 *       One JSON line of an event shape straight to a row dict (see jsonb_native.py);
 *       None whenever the line is anything but a plain, valid row, so that the caller's
 *       Python path produces the exact error, or the exact row, itself. Columns.add
 *       appends the same values to Arrow column buffers instead (False where parse_row
 *       gives None), so that no Python object is made per value.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 200
/* PostgreSQL numeric limits, as jsonb.py enforces them. */
#define MAX_EXPONENT 1073741823LL
#define MAX_DSCALE 16383LL
#define MAX_INT_DIGITS 131072LL
#define PLAIN_NUMBER_LEN 1000

enum { E_OK = 0, E_INVALID, E_DEEP, E_NOMEM, E_OVERFLOW };

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

typedef struct {
    const unsigned char *p, *end;
    int err;
    const char *why;
    int depth;
    Buf str;    /* a decoded string value */
    Buf num;    /* digits of a number */
    Buf obj;    /* an object being assembled */
} Parser;

static int buf_grow(Buf *b, size_t extra) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *d = PyMem_Realloc(b->data, cap);
    if (d == NULL) return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

#define RESERVE(P, b, n) \
    do { \
        if ((b)->len + (n) > (b)->cap && buf_grow((b), (n)) < 0) { \
            (P)->err = E_NOMEM; \
            return -1; \
        } \
    } while (0)

static void buf_free(Buf *b) {
    PyMem_Free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int fail(Parser *P, int err, const char *why) {
    if (P->err == E_OK) {
        P->err = err;
        P->why = why;
    }
    return -1;
}

static inline void skip_ws(Parser *P) {
    while (P->p < P->end) {
        unsigned char c = *P->p;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            P->p++;
        else
            break;
    }
}

/* Length of the strict UTF-8 sequence at s (as Python's decoder accepts), or 0. */
static inline int utf8_len(const unsigned char *s, const unsigned char *end) {
    unsigned char c = s[0];
    size_t left = (size_t)(end - s);
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        if (left < 2 || (s[1] & 0xC0) != 0x80) return 0;
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (left < 3) return 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no UTF-8 encoded surrogates */
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80) return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (left < 4) return 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        return 4;
    }
    return 0;
}

static inline int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int hex4(const unsigned char *s, const unsigned char *end, unsigned *out) {
    if (end - s < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(s[i]);
        if (h < 0) return -1;
        v = (v << 4) | (unsigned)h;
    }
    *out = v;
    return 0;
}

/* Decode the JSON string at P->p (on its opening quote) and append its raw UTF-8 to dst. */
static int decode_string(Parser *P, Buf *dst) {
    const unsigned char *p = P->p + 1, *end = P->end;
    for (;;) {
        const unsigned char *run = p;
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++;
        if (p > run) {
            RESERVE(P, dst, (size_t)(p - run));
            memcpy(dst->data + dst->len, run, (size_t)(p - run));
            dst->len += (size_t)(p - run);
        }
        if (p >= end) return fail(P, E_INVALID, "unterminated string");
        unsigned char c = *p;
        if (c == '"') {
            P->p = p + 1;
            return 0;
        }
        if (c < 0x20) return fail(P, E_INVALID, "control character in string");
        if (c >= 0x80) {
            int n = utf8_len(p, end);
            if (n == 0) return fail(P, E_INVALID, "not UTF-8 text");
            RESERVE(P, dst, (size_t)n);
            memcpy(dst->data + dst->len, p, (size_t)n);
            dst->len += (size_t)n;
            p += n;
            continue;
        }
        /* backslash */
        if (p + 1 >= end) return fail(P, E_INVALID, "unterminated string");
        unsigned char e = p[1];
        char out;
        switch (e) {
        case '"': out = '"'; break;
        case '\\': out = '\\'; break;
        case '/': out = '/'; break;
        case 'b': out = '\b'; break;
        case 'f': out = '\f'; break;
        case 'n': out = '\n'; break;
        case 'r': out = '\r'; break;
        case 't': out = '\t'; break;
        case 'u': {
            unsigned cp;
            if (hex4(p + 2, end, &cp) < 0) return fail(P, E_INVALID, "invalid \\uXXXX escape");
            p += 6;
            if (cp == 0) return fail(P, E_INVALID, "\\u0000 cannot be stored in jsonb");
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(P, E_INVALID, "lone surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (end - p >= 6 && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, end, &lo) == 0 &&
                    lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                } else {
                    return fail(P, E_INVALID, "lone surrogate");
                }
            }
            RESERVE(P, dst, 4);
            char *d = dst->data + dst->len;
            if (cp < 0x80) {
                d[0] = (char)cp;
                dst->len += 1;
            } else if (cp < 0x800) {
                d[0] = (char)(0xC0 | (cp >> 6));
                d[1] = (char)(0x80 | (cp & 0x3F));
                dst->len += 2;
            } else if (cp < 0x10000) {
                d[0] = (char)(0xE0 | (cp >> 12));
                d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                d[2] = (char)(0x80 | (cp & 0x3F));
                dst->len += 3;
            } else {
                d[0] = (char)(0xF0 | (cp >> 18));
                d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
                d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
                d[3] = (char)(0x80 | (cp & 0x3F));
                dst->len += 4;
            }
            continue;
        }
        default:
            return fail(P, E_INVALID, "invalid escape");
        }
        RESERVE(P, dst, 1);
        dst->data[dst->len++] = out;
        p += 2;
    }
}

/* Append s (raw UTF-8) as a PostgreSQL jsonb string literal. */
static int emit_string(Parser *P, Buf *out, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    RESERVE(P, out, n + 2);
    out->data[out->len++] = '"';
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (i < n && (unsigned char)s[i] >= 0x20 && s[i] != '"' && s[i] != '\\') i++;
        if (i > run) {
            RESERVE(P, out, i - run + 1);
            memcpy(out->data + out->len, s + run, i - run);
            out->len += i - run;
        }
        if (i >= n) break;
        unsigned char c = (unsigned char)s[i++];
        RESERVE(P, out, 6);
        char *d = out->data + out->len;
        const char *two = NULL;
        switch (c) {
        case '"': two = "\\\""; break;
        case '\\': two = "\\\\"; break;
        case '\b': two = "\\b"; break;
        case '\f': two = "\\f"; break;
        case '\n': two = "\\n"; break;
        case '\r': two = "\\r"; break;
        case '\t': two = "\\t"; break;
        }
        if (two != NULL) {
            d[0] = two[0];
            d[1] = two[1];
            out->len += 2;
        } else {
            d[0] = '\\';
            d[1] = 'u';
            d[2] = '0';
            d[3] = '0';
            d[4] = hex[c >> 4];
            d[5] = hex[c & 15];
            out->len += 6;
        }
    }
    RESERVE(P, out, 1);
    out->data[out->len++] = '"';
    return 0;
}

static int parse_string_value(Parser *P, Buf *out) {
    P->str.len = 0;
    if (decode_string(P, &P->str) < 0) return -1;
    return emit_string(P, out, P->str.data, P->str.len);
}

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

/* The JSON number at P->p, rendered as PostgreSQL numeric text. */
static int parse_number(Parser *P, Buf *out) {
    const unsigned char *p = P->p, *end = P->end, *start = p;
    int neg = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end || !IS_DIGIT(*p)) return fail(P, E_INVALID, "invalid number");
    const unsigned char *ip = p;
    if (*p == '0')
        p++;
    else
        while (p < end && IS_DIGIT(*p)) p++;
    size_t ilen = (size_t)(p - ip);
    const unsigned char *fp = NULL;
    size_t flen = 0;
    if (p < end && *p == '.') {
        fp = ++p;
        while (p < end && IS_DIGIT(*p)) p++;
        flen = (size_t)(p - fp);
        if (flen == 0) return fail(P, E_INVALID, "invalid number");
    }
    int has_exp = 0, exp_neg = 0;
    const unsigned char *ep = NULL;
    size_t elen = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            exp_neg = *p == '-';
            p++;
        }
        ep = p;
        while (p < end && IS_DIGIT(*p)) p++;
        elen = (size_t)(p - ep);
        if (elen == 0) return fail(P, E_INVALID, "invalid number");
        has_exp = 1;
    }
    size_t total = (size_t)(p - start);
    P->p = p;
    int all_zero = 1;
    for (size_t i = 0; i < ilen && all_zero; i++) all_zero = ip[i] == '0';
    for (size_t i = 0; i < flen && all_zero; i++) all_zero = fp[i] == '0';
    if (!has_exp && total < PLAIN_NUMBER_LEN) {
        const unsigned char *s = start;
        if (neg && all_zero) {
            s++;
            total--;
        }
        RESERVE(P, out, total);
        memcpy(out->data + out->len, s, total);
        out->len += total;
        return 0;
    }
    long long exponent = 0;
    if (has_exp) {
        while (elen > 0 && *ep == '0') {
            ep++;
            elen--;
        }
        if (elen > 10) return fail(P, E_OVERFLOW, "number overflows PostgreSQL's numeric format");
        for (size_t i = 0; i < elen; i++) exponent = exponent * 10 + (ep[i] - '0');
        if (exponent >= MAX_EXPONENT)
            return fail(P, E_OVERFLOW, "number overflows PostgreSQL's numeric format");
        if (exp_neg) exponent = -exponent;
    }
    long long dscale = (long long)flen - exponent;
    if (dscale < 0) dscale = 0;
    if (dscale > MAX_DSCALE)
        return fail(P, E_OVERFLOW, "number overflows PostgreSQL's numeric format");
    if (all_zero) {
        RESERVE(P, out, (size_t)dscale + 2);
        out->data[out->len++] = '0';
        if (dscale) {
            out->data[out->len++] = '.';
            memset(out->data + out->len, '0', (size_t)dscale);
            out->len += (size_t)dscale;
        }
        return 0;
    }
    /* digits = (int part + fraction) without leading zeros */
    Buf *dg = &P->num;
    dg->len = 0;
    RESERVE(P, dg, ilen + flen);
    memcpy(dg->data, ip, ilen);
    if (flen) memcpy(dg->data + ilen, fp, flen);
    size_t skip = 0;
    while (dg->data[skip] == '0') skip++;
    long long ndig = (long long)(ilen + flen - skip);
    long long shift = exponent - (long long)flen + dscale;
    if (ndig + shift - dscale > MAX_INT_DIGITS)
        return fail(P, E_OVERFLOW, "number overflows PostgreSQL's numeric format");
    long long L = ndig + shift; /* digits then shift zeros = value * 10**dscale */
    size_t need = (size_t)(L + dscale + 3);
    RESERVE(P, out, need);
    char *d = out->data + out->len;
    const char *digits = dg->data + skip;
    size_t k = 0;
    if (neg) d[k++] = '-';
    /* the virtual string V = digits (ndig) + '0' * shift, of length L */
#define V(i) ((i) < ndig ? digits[(i)] : '0')
    if (L > dscale) {
        long long ip_len = L - dscale;
        for (long long i = 0; i < ip_len; i++) d[k++] = V(i);
        if (dscale) {
            d[k++] = '.';
            for (long long i = ip_len; i < L; i++) d[k++] = V(i);
        }
    } else {
        d[k++] = '0';
        d[k++] = '.';
        for (long long i = 0; i < dscale - L; i++) d[k++] = '0';
        for (long long i = 0; i < L; i++) d[k++] = V(i);
    }
#undef V
    out->len += k;
    return 0;
}

static int parse_value(Parser *P, Buf *out);

typedef struct {
    size_t koff, klen, voff, vlen, idx;
    const char *key;
} Entry;

static int entry_cmp(const Entry *a, const Entry *b) {
    if (a->klen != b->klen) return a->klen < b->klen ? -1 : 1;
    int c = memcmp(a->key, b->key, a->klen);
    if (c) return c;
    return a->idx < b->idx ? -1 : (a->idx > b->idx ? 1 : 0);
}

static int entry_qcmp(const void *a, const void *b) { return entry_cmp(a, b); }

static int parse_object(Parser *P, Buf *out) {
    P->p++; /* '{' */
    skip_ws(P);
    if (P->p < P->end && *P->p == '}') {
        P->p++;
        RESERVE(P, out, 2);
        memcpy(out->data + out->len, "{}", 2);
        out->len += 2;
        return 0;
    }
    size_t base = out->len;
    Entry local[16];
    Entry *entries = local;
    size_t n = 0, cap = 16;
    int rc = -1;
    for (;;) {
        skip_ws(P);
        if (P->p >= P->end || *P->p != '"') {
            fail(P, E_INVALID, "expected a property name");
            goto done;
        }
        if (n == cap) {
            Entry *grown = PyMem_Malloc(2 * cap * sizeof(Entry));
            if (grown == NULL) {
                fail(P, E_NOMEM, "out of memory");
                goto done;
            }
            memcpy(grown, entries, n * sizeof(Entry));
            if (entries != local) PyMem_Free(entries);
            entries = grown;
            cap *= 2;
        }
        Entry *e = &entries[n];
        e->idx = n;
        e->koff = out->len;
        if (decode_string(P, out) < 0) goto done;
        e->klen = out->len - e->koff;
        skip_ws(P);
        if (P->p >= P->end || *P->p != ':') {
            fail(P, E_INVALID, "expected ':'");
            goto done;
        }
        P->p++;
        skip_ws(P);
        e->voff = out->len;
        if (parse_value(P, out) < 0) goto done;
        e->vlen = out->len - e->voff;
        n++;
        skip_ws(P);
        if (P->p < P->end && *P->p == ',') {
            P->p++;
            continue;
        }
        if (P->p < P->end && *P->p == '}') {
            P->p++;
            break;
        }
        fail(P, E_INVALID, "expected ',' or '}'");
        goto done;
    }
    for (size_t i = 0; i < n; i++) entries[i].key = out->data + entries[i].koff;
    if (n <= 24) {
        for (size_t i = 1; i < n; i++) {
            Entry t = entries[i];
            size_t j = i;
            while (j > 0 && entry_cmp(&entries[j - 1], &t) > 0) {
                entries[j] = entries[j - 1];
                j--;
            }
            entries[j] = t;
        }
    } else {
        qsort(entries, n, sizeof(Entry), entry_qcmp);
    }
    Buf *ob = &P->obj;
    ob->len = 0;
    {
        /* a nested object's assembly is finished before this one starts: P->obj is free */
        if (ob->len + 1 > ob->cap && buf_grow(ob, 1) < 0) {
            fail(P, E_NOMEM, "out of memory");
            goto done;
        }
        ob->data[ob->len++] = '{';
        int first = 1;
        for (size_t i = 0; i < n; i++) {
            Entry *e = &entries[i];
            if (i + 1 < n && entries[i + 1].klen == e->klen &&
                memcmp(entries[i + 1].key, e->key, e->klen) == 0)
                continue; /* a later duplicate wins */
            if (!first) {
                if (ob->len + 2 > ob->cap && buf_grow(ob, 2) < 0) {
                    fail(P, E_NOMEM, "out of memory");
                    goto done;
                }
                ob->data[ob->len++] = ',';
                ob->data[ob->len++] = ' ';
            }
            first = 0;
            if (emit_string(P, ob, e->key, e->klen) < 0) goto done;
            if (ob->len + 2 + e->vlen > ob->cap && buf_grow(ob, 2 + e->vlen) < 0) {
                fail(P, E_NOMEM, "out of memory");
                goto done;
            }
            ob->data[ob->len++] = ':';
            ob->data[ob->len++] = ' ';
            memcpy(ob->data + ob->len, out->data + e->voff, e->vlen);
            ob->len += e->vlen;
        }
        if (ob->len + 1 > ob->cap && buf_grow(ob, 1) < 0) {
            fail(P, E_NOMEM, "out of memory");
            goto done;
        }
        ob->data[ob->len++] = '}';
    }
    out->len = base;
    if (out->len + ob->len > out->cap && buf_grow(out, ob->len) < 0) {
        fail(P, E_NOMEM, "out of memory");
        goto done;
    }
    memcpy(out->data + out->len, ob->data, ob->len);
    out->len += ob->len;
    rc = 0;
done:
    if (entries != local) PyMem_Free(entries);
    return rc;
}

static int parse_array(Parser *P, Buf *out) {
    P->p++; /* '[' */
    skip_ws(P);
    RESERVE(P, out, 2);
    out->data[out->len++] = '[';
    if (P->p < P->end && *P->p == ']') {
        P->p++;
        out->data[out->len++] = ']';
        return 0;
    }
    for (;;) {
        skip_ws(P);
        if (parse_value(P, out) < 0) return -1;
        skip_ws(P);
        if (P->p < P->end && *P->p == ',') {
            P->p++;
            RESERVE(P, out, 2);
            out->data[out->len++] = ',';
            out->data[out->len++] = ' ';
            continue;
        }
        if (P->p < P->end && *P->p == ']') {
            P->p++;
            RESERVE(P, out, 1);
            out->data[out->len++] = ']';
            return 0;
        }
        return fail(P, E_INVALID, "expected ',' or ']'");
    }
}

static int literal(Parser *P, Buf *out, const char *word, size_t n) {
    if ((size_t)(P->end - P->p) < n || memcmp(P->p, word, n) != 0)
        return fail(P, E_INVALID, "invalid value");
    P->p += n;
    RESERVE(P, out, n);
    memcpy(out->data + out->len, word, n);
    out->len += n;
    return 0;
}

static int parse_value(Parser *P, Buf *out) {
    if (P->p >= P->end) return fail(P, E_INVALID, "expected a value");
    unsigned char c = *P->p;
    int rc;
    switch (c) {
    case '{':
    case '[':
        if (++P->depth > MAX_DEPTH) return fail(P, E_DEEP, "nested too deeply");
        rc = c == '{' ? parse_object(P, out) : parse_array(P, out);
        P->depth--;
        return rc;
    case '"':
        return parse_string_value(P, out);
    case 't':
        return literal(P, out, "true", 4);
    case 'f':
        return literal(P, out, "false", 5);
    case 'n':
        return literal(P, out, "null", 4);
    default:
        if (c == '-' || IS_DIGIT(c)) return parse_number(P, out);
        return fail(P, E_INVALID, "invalid value");
    }
}

static void parser_init(Parser *P, const char *s, Py_ssize_t n) {
    memset(P, 0, sizeof(*P));
    P->p = (const unsigned char *)s;
    P->end = P->p + n;
}

static void parser_free(Parser *P) {
    buf_free(&P->str);
    buf_free(&P->num);
    buf_free(&P->obj);
}

static int get_text(PyObject *arg, const char **s, Py_ssize_t *n) {
    if (PyUnicode_Check(arg)) {
        *s = PyUnicode_AsUTF8AndSize(arg, n);
        if (*s == NULL) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "invalid JSON: text holds a lone surrogate");
            return -1;
        }
        return 0;
    }
    if (PyBytes_Check(arg)) {
        *s = PyBytes_AS_STRING(arg);
        *n = PyBytes_GET_SIZE(arg);
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "canonical() needs str or bytes, not %.100s",
                 Py_TYPE(arg)->tp_name);
    return -1;
}

static PyObject *raise_parse_error(Parser *P) {
    if (P->err == E_NOMEM) return PyErr_NoMemory();
    PyErr_Format(PyExc_ValueError, "invalid JSON: %s", P->why ? P->why : "rejected");
    return NULL;
}

static PyObject *canonical(PyObject *self, PyObject *arg) {
    (void)self;
    const char *s;
    Py_ssize_t n;
    if (get_text(arg, &s, &n) < 0) return NULL;
    Parser P;
    parser_init(&P, s, n);
    Buf out = {0};
    PyObject *result = NULL;
    skip_ws(&P);
    if (parse_value(&P, &out) == 0) {
        skip_ws(&P);
        if (P.p != P.end) fail(&P, E_INVALID, "extra data");
    }
    if (P.err == E_OK) {
        result = PyUnicode_DecodeUTF8(out.data ? out.data : "", (Py_ssize_t)out.len, "strict");
    } else if (P.err == E_DEEP) {
        result = Py_NewRef(Py_None);
    } else {
        raise_parse_error(&P);
    }
    buf_free(&out);
    parser_free(&P);
    return result;
}

/* --- one JSON line of an event shape ---------------------------------------------------- */

#define MAX_FIELDS 64
enum { K_TEXT = 0, K_JSONB = 1, K_INT = 2 };
enum { S_ABSENT = 0, S_NULL = 1, S_VALUE = 2 };

typedef struct {
    PyObject *field;
    const char *key;
    Py_ssize_t klen;
    long kind;
    int required;
} FieldSpec;

typedef struct {
    int state;
    size_t off, len; /* text and jsonb: UTF-8 bytes in the scratch buffer */
    long long ival;  /* int */
} Slot;

/* Buffers reused from line to line. */
typedef struct {
    Parser P;
    Buf key, scratch;
} LineState;

static void line_state_free(LineState *L) {
    parser_free(&L->P);
    buf_free(&L->key);
    buf_free(&L->scratch);
}

static int load_spec(PyObject *spec, FieldSpec *fs) {
    if (!PyTuple_Check(spec)) {
        PyErr_SetString(PyExc_TypeError, "spec must be a tuple");
        return -1;
    }
    Py_ssize_t nf = PyTuple_GET_SIZE(spec);
    if (nf > MAX_FIELDS) {
        PyErr_SetString(PyExc_ValueError, "too many fields");
        return -1;
    }
    for (Py_ssize_t i = 0; i < nf; i++) {
        PyObject *item = PyTuple_GET_ITEM(spec, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 4 ||
            !PyUnicode_Check(PyTuple_GET_ITEM(item, 0)) ||
            !PyBytes_Check(PyTuple_GET_ITEM(item, 1))) {
            PyErr_SetString(PyExc_TypeError,
                            "spec items are (field: str, key: bytes, kind: int, required: bool)");
            return -1;
        }
        fs[i].field = PyTuple_GET_ITEM(item, 0);
        fs[i].key = PyBytes_AS_STRING(PyTuple_GET_ITEM(item, 1));
        fs[i].klen = PyBytes_GET_SIZE(PyTuple_GET_ITEM(item, 1));
        fs[i].kind = PyLong_AsLong(PyTuple_GET_ITEM(item, 2));
        fs[i].required = PyObject_IsTrue(PyTuple_GET_ITEM(item, 3));
        if (PyErr_Occurred()) return -1;
        if (fs[i].kind != K_TEXT && fs[i].kind != K_JSONB && fs[i].kind != K_INT) {
            PyErr_SetString(PyExc_ValueError, "unknown field kind");
            return -1;
        }
    }
    return 0;
}

/* Scan one line (a JSON object) into slots. 0: a plain valid row; 1: the caller must fall
 * back to the Python path; -1: out of memory (exception set). */
static int scan_line(LineState *L, const char *raw, Py_ssize_t rawlen, const FieldSpec *fs,
                     Py_ssize_t nf, Slot *slots) {
    Parser *P = &L->P;
    P->p = (const unsigned char *)raw;
    P->end = P->p + rawlen;
    P->err = E_OK;
    P->why = NULL;
    P->depth = 1;
    Buf *key = &L->key, *sc = &L->scratch;
    sc->len = 0;
    for (Py_ssize_t i = 0; i < nf; i++) slots[i].state = S_ABSENT;

    skip_ws(P);
    if (P->p >= P->end || *P->p != '{') goto fall;
    P->p++;
    skip_ws(P);
    if (P->p < P->end && *P->p == '}') {
        P->p++;
    } else {
        for (;;) {
            skip_ws(P);
            if (P->p >= P->end || *P->p != '"') goto fall;
            key->len = 0;
            if (decode_string(P, key) < 0) goto fall;
            skip_ws(P);
            if (P->p >= P->end || *P->p != ':') goto fall;
            P->p++;
            skip_ws(P);
            Py_ssize_t idx = -1;
            for (Py_ssize_t i = 0; i < nf; i++) {
                if ((size_t)fs[i].klen == key->len &&
                    (key->len == 0 || memcmp(fs[i].key, key->data, key->len) == 0)) {
                    idx = i;
                    break;
                }
            }
            if (P->p >= P->end) goto fall;
            unsigned char c = *P->p;
            size_t off = sc->len;
            if (idx < 0) {
                if (parse_value(P, sc) < 0) goto fall; /* validated, then dropped */
                sc->len = off;
            } else if (c == 'n') {
                if (literal(P, sc, "null", 4) < 0) goto fall;
                sc->len = off;
                slots[idx].state = S_NULL;
            } else if (fs[idx].kind == K_TEXT) {
                if (c != '"') goto fall;
                if (decode_string(P, sc) < 0) goto fall;
                slots[idx].state = S_VALUE;
                slots[idx].off = off;
                slots[idx].len = sc->len - off;
            } else if (fs[idx].kind == K_JSONB) {
                if (parse_value(P, sc) < 0) goto fall;
                slots[idx].state = S_VALUE;
                slots[idx].off = off;
                slots[idx].len = sc->len - off;
            } else { /* K_INT: a plain JSON integer that surely fits int64 */
                if (c != '-' && !IS_DIGIT(c)) goto fall;
                const unsigned char *start = P->p;
                if (parse_number(P, sc) < 0) goto fall;
                sc->len = off;
                size_t len = (size_t)(P->p - start);
                if (len > 18 || memchr(start, '.', len) || memchr(start, 'e', len) ||
                    memchr(start, 'E', len))
                    goto fall;
                long long v = 0;
                size_t k = start[0] == '-';
                for (; k < len; k++) v = v * 10 + (start[k] - '0');
                slots[idx].state = S_VALUE;
                slots[idx].ival = start[0] == '-' ? -v : v;
            }
            skip_ws(P);
            if (P->p < P->end && *P->p == ',') {
                P->p++;
                continue;
            }
            if (P->p < P->end && *P->p == '}') {
                P->p++;
                break;
            }
            goto fall;
        }
    }
    skip_ws(P);
    if (P->p != P->end) goto fall;
    for (Py_ssize_t i = 0; i < nf; i++) {
        if (fs[i].required &&
            (slots[i].state != S_VALUE || (fs[i].kind == K_TEXT && slots[i].len == 0)))
            goto fall; /* require() refuses it, with its own message */
    }
    return 0;
fall:
    if (P->err == E_NOMEM) {
        PyErr_NoMemory();
        return -1;
    }
    return 1;
}

static PyObject *slot_value(LineState *L, const FieldSpec *f, const Slot *s) {
    if (s->state == S_NULL) return Py_NewRef(Py_None);
    if (f->kind == K_INT) return PyLong_FromLongLong(s->ival);
    return PyUnicode_DecodeUTF8(L->scratch.data + s->off, (Py_ssize_t)s->len, "strict");
}

static PyObject *parse_row(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "parse_row(raw: bytes, spec: tuple, template: dict)");
        return NULL;
    }
    FieldSpec fs[MAX_FIELDS];
    if (load_spec(args[1], fs) < 0) return NULL;
    Py_ssize_t nf = PyTuple_GET_SIZE(args[1]);
    Slot slots[MAX_FIELDS];
    LineState L;
    memset(&L, 0, sizeof(L));
    PyObject *row = NULL, *absent = NULL;
    int rc = scan_line(&L, PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), fs, nf, slots);
    if (rc < 0) goto done;
    if (rc > 0) {
        row = Py_NewRef(Py_None);
        goto done;
    }
    row = PyDict_Copy(args[2]);
    if (row == NULL) goto done;
    for (Py_ssize_t i = 0; i < nf; i++) {
        if (slots[i].state == S_ABSENT) {
            if (absent == NULL) {
                absent = Py_NewRef(fs[i].field);
            } else {
                Py_SETREF(absent, PyUnicode_FromFormat("%U,%U", absent, fs[i].field));
                if (absent == NULL) goto fail;
            }
            continue;
        }
        PyObject *v = slot_value(&L, &fs[i], &slots[i]);
        if (v == NULL) goto fail;
        int err = PyDict_SetItem(row, fs[i].field, v);
        Py_DECREF(v);
        if (err < 0) goto fail;
    }
    if (PyDict_SetItemString(row, "absent_fields", absent ? absent : Py_None) < 0) goto fail;
    goto done;
fail:
    Py_CLEAR(row);
done:
    Py_XDECREF(absent);
    line_state_free(&L);
    return row;
}

/* --- Columns: lines straight into Arrow buffers ------------------------------------------ */

typedef struct {
    int kind;       /* K_TEXT (also jsonb and absent_fields) or K_INT */
    Buf validity;   /* one bit per row, 1 = valid */
    Buf offsets;    /* int32 per row + 1 (strings) */
    Buf data;       /* UTF-8 bytes (strings) or int64 values */
    Py_ssize_t nulls;
} Col;

typedef struct {
    PyObject_HEAD
    PyObject *spec;
    FieldSpec fs[MAX_FIELDS];
    Py_ssize_t nf;
    Col cols[MAX_FIELDS + 1]; /* one per field, then absent_fields */
    Py_ssize_t rows;
    Slot slots[MAX_FIELDS];
    LineState L;
} Columns;

static int col_reserve(Buf *b, size_t extra) {
    if (b->len + extra > b->cap && buf_grow(b, extra) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int col_start(Col *c) {
    c->validity.len = c->offsets.len = c->data.len = 0;
    c->nulls = 0;
    if (c->kind != K_INT) {
        if (col_reserve(&c->offsets, 4) < 0) return -1;
        int32_t zero = 0;
        memcpy(c->offsets.data, &zero, 4);
        c->offsets.len = 4;
    }
    return 0;
}

static int col_valid_bit(Col *c, Py_ssize_t row, int valid) {
    size_t byte = (size_t)row >> 3;
    if (byte >= c->validity.len) {
        if (col_reserve(&c->validity, 1) < 0) return -1;
        c->validity.data[c->validity.len++] = 0;
    }
    if (valid)
        c->validity.data[byte] |= (char)(1 << (row & 7));
    else
        c->nulls++;
    return 0;
}

static int col_put_str(Col *c, Py_ssize_t row, const char *s, size_t n) {
    if (c->data.len + n > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "more than 2 GiB of text in one column of a batch");
        return -1;
    }
    if (col_reserve(&c->data, n) < 0 || col_reserve(&c->offsets, 4) < 0) return -1;
    if (n) memmove(c->data.data + c->data.len, s, n); /* s may be that very spot */
    c->data.len += n;
    int32_t end = (int32_t)c->data.len;
    memcpy(c->offsets.data + c->offsets.len, &end, 4);
    c->offsets.len += 4;
    return col_valid_bit(c, row, 1);
}

static int col_put_int(Col *c, Py_ssize_t row, long long v) {
    if (col_reserve(&c->data, 8) < 0) return -1;
    int64_t x = (int64_t)v;
    memcpy(c->data.data + c->data.len, &x, 8);
    c->data.len += 8;
    return col_valid_bit(c, row, 1);
}

static int col_put_null(Col *c, Py_ssize_t row) {
    if (c->kind == K_INT) {
        if (col_reserve(&c->data, 8) < 0) return -1;
        memset(c->data.data + c->data.len, 0, 8);
        c->data.len += 8;
    } else {
        if (col_reserve(&c->offsets, 4) < 0) return -1;
        int32_t end = (int32_t)c->data.len;
        memcpy(c->offsets.data + c->offsets.len, &end, 4);
        c->offsets.len += 4;
    }
    return col_valid_bit(c, row, 0);
}

static int columns_reset(Columns *self) {
    self->rows = 0;
    for (Py_ssize_t i = 0; i <= self->nf; i++)
        if (col_start(&self->cols[i]) < 0) return -1;
    return 0;
}

static int Columns_init(Columns *self, PyObject *args, PyObject *kwds) {
    PyObject *spec;
    static char *kwlist[] = {"spec", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O", kwlist, &spec)) return -1;
    if (self->spec != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Columns is already initialised");
        return -1;
    }
    if (load_spec(spec, self->fs) < 0) return -1;
    self->spec = Py_NewRef(spec); /* keeps the field names and keys alive */
    self->nf = PyTuple_GET_SIZE(spec);
    for (Py_ssize_t i = 0; i < self->nf; i++) self->cols[i].kind = self->fs[i].kind == K_INT ? K_INT : K_TEXT;
    self->cols[self->nf].kind = K_TEXT;
    return columns_reset(self);
}

static void Columns_dealloc(Columns *self) {
    for (Py_ssize_t i = 0; i <= MAX_FIELDS; i++) {
        buf_free(&self->cols[i].validity);
        buf_free(&self->cols[i].offsets);
        buf_free(&self->cols[i].data);
    }
    line_state_free(&self->L);
    Py_XDECREF(self->spec);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int columns_ready(Columns *self) {
    if (self->spec == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Columns is not initialised");
        return -1;
    }
    return 0;
}

static PyObject *Columns_add(Columns *self, PyObject *raw) {
    if (columns_ready(self) < 0) return NULL;
    if (!PyBytes_Check(raw)) {
        PyErr_SetString(PyExc_TypeError, "add() needs bytes");
        return NULL;
    }
    int rc = scan_line(&self->L, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), self->fs,
                       self->nf, self->slots);
    if (rc < 0) return NULL;
    if (rc > 0) Py_RETURN_FALSE;
    Py_ssize_t row = self->rows;
    Col *absent = &self->cols[self->nf];
    size_t absent_start = absent->data.len;
    int any_absent = 0;
    for (Py_ssize_t i = 0; i < self->nf; i++) {
        Slot *s = &self->slots[i];
        Col *c = &self->cols[i];
        int err;
        if (s->state == S_VALUE) {
            err = c->kind == K_INT ? col_put_int(c, row, s->ival)
                                   : col_put_str(c, row, self->L.scratch.data + s->off, s->len);
        } else {
            err = col_put_null(c, row);
            if (s->state == S_ABSENT) {
                Py_ssize_t n;
                const char *name = PyUnicode_AsUTF8AndSize(self->fs[i].field, &n);
                if (name == NULL || col_reserve(&absent->data, (size_t)n + 1) < 0) return NULL;
                if (any_absent) absent->data.data[absent->data.len++] = ',';
                memcpy(absent->data.data + absent->data.len, name, (size_t)n);
                absent->data.len += (size_t)n;
                any_absent = 1;
            }
        }
        if (err < 0) return NULL;
    }
    int err;
    if (any_absent) {
        size_t n = absent->data.len - absent_start;
        absent->data.len = absent_start;
        err = col_put_str(absent, row, absent->data.data + absent_start, n);
    } else {
        err = col_put_null(absent, row);
    }
    if (err < 0) return NULL;
    self->rows++;
    Py_RETURN_TRUE;
}

/* add_values(values): a row the Python path made; one value per field, then absent_fields
 * (None, str, or int for an int field). */
static PyObject *Columns_add_values(Columns *self, PyObject *values) {
    if (columns_ready(self) < 0) return NULL;
    PyObject *seq = PySequence_Fast(values, "add_values() needs a sequence");
    if (seq == NULL) return NULL;
    if (PySequence_Fast_GET_SIZE(seq) != self->nf + 1) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "add_values() needs one value per field, plus one");
        return NULL;
    }
    /* check and convert everything first, so that a bad value appends nothing */
    for (Py_ssize_t i = 0; i <= self->nf; i++) {
        PyObject *v = PySequence_Fast_GET_ITEM(seq, i);
        int kind = self->cols[i].kind;
        if (v == Py_None) continue;
        if (kind == K_INT) {
            if (!PyLong_Check(v)) {
                PyErr_Format(PyExc_TypeError, "expected an int, not %.100s", Py_TYPE(v)->tp_name);
                goto fail;
            }
            self->slots[i < self->nf ? i : 0].ival = PyLong_AsLongLong(v);
            if (PyErr_Occurred()) goto fail;
        } else if (!PyUnicode_Check(v)) {
            PyErr_Format(PyExc_TypeError, "expected a str, not %.100s", Py_TYPE(v)->tp_name);
            goto fail;
        } else if (PyUnicode_AsUTF8AndSize(v, NULL) == NULL) {
            goto fail;
        }
    }
    Py_ssize_t row = self->rows;
    for (Py_ssize_t i = 0; i <= self->nf; i++) {
        PyObject *v = PySequence_Fast_GET_ITEM(seq, i);
        Col *c = &self->cols[i];
        int err;
        if (v == Py_None) {
            err = col_put_null(c, row);
        } else if (c->kind == K_INT) {
            err = col_put_int(c, row, self->slots[i].ival);
        } else {
            Py_ssize_t n;
            const char *s = PyUnicode_AsUTF8AndSize(v, &n);
            err = col_put_str(c, row, s, (size_t)n);
        }
        if (err < 0) goto fail;
    }
    self->rows++;
    Py_DECREF(seq);
    Py_RETURN_NONE;
fail:
    Py_DECREF(seq);
    return NULL;
}

/* finish() -> (rows, [per column: (validity | None, offsets | None, data)]); then empty. */
static PyObject *Columns_finish(Columns *self, PyObject *unused) {
    (void)unused;
    if (columns_ready(self) < 0) return NULL;
    PyObject *list = PyList_New(self->nf + 1);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0; i <= self->nf; i++) {
        Col *c = &self->cols[i];
        PyObject *validity = c->nulls ? PyBytes_FromStringAndSize(c->validity.data, (Py_ssize_t)c->validity.len)
                                      : Py_NewRef(Py_None);
        PyObject *offsets = c->kind == K_INT
                                ? Py_NewRef(Py_None)
                                : PyBytes_FromStringAndSize(c->offsets.data, (Py_ssize_t)c->offsets.len);
        PyObject *data = PyBytes_FromStringAndSize(c->data.data ? c->data.data : "", (Py_ssize_t)c->data.len);
        PyObject *t = (validity && offsets && data) ? PyTuple_Pack(3, validity, offsets, data) : NULL;
        Py_XDECREF(validity);
        Py_XDECREF(offsets);
        Py_XDECREF(data);
        if (t == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, t);
    }
    PyObject *result = Py_BuildValue("nN", self->rows, list);
    if (result == NULL) return NULL;
    if (columns_reset(self) < 0) {
        Py_DECREF(result);
        return NULL;
    }
    return result;
}

static Py_ssize_t Columns_len(Columns *self) { return self->rows; }

static PyMethodDef Columns_methods[] = {
    {"add", (PyCFunction)Columns_add, METH_O,
     "add(raw: bytes) -> bool: append a plain valid line; False (nothing appended) otherwise."},
    {"add_values", (PyCFunction)Columns_add_values, METH_O,
     "add_values(values): append a row made elsewhere (one value per field, then absent_fields)."},
    {"finish", (PyCFunction)Columns_finish, METH_NOARGS,
     "finish() -> (rows, [(validity, offsets, data)]): the Arrow buffers; starts over empty."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Columns_as_sequence = {
    .sq_length = (lenfunc)Columns_len,
};

static PyTypeObject ColumnsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "caracal_forensics._jsonb_native.Columns",
    .tp_doc = "Columns(spec): JSON lines of an event shape into Arrow buffers.",
    .tp_basicsize = sizeof(Columns),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Columns_init,
    .tp_dealloc = (destructor)Columns_dealloc,
    .tp_methods = Columns_methods,
    .tp_as_sequence = &Columns_as_sequence,
};

static PyMethodDef methods[] = {
    {"canonical", canonical, METH_O,
     "canonical(text: str | bytes) -> str | None: PostgreSQL jsonb::text of a JSON document "
     "(ValueError if jsonb rejects it, None if nested too deeply to decide here)."},
    {"parse_row", (PyCFunction)(void (*)(void))parse_row, METH_FASTCALL,
     "parse_row(raw: bytes, spec: tuple, template: dict) -> dict | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_jsonb_native", "PostgreSQL jsonb::text kernel.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__jsonb_native(void) {
    if (PyType_Ready(&ColumnsType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Columns", (PyObject *)&ColumnsType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

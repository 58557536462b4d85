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
 *   Columns(spec): add(raw) -> bool, add_block(data, start, end, line, max_len=-1) ->
 *   (pos, line, stopped), add_values(values, line=0), finish() -> Arrow buffers and line numbers
 *       One JSON line of an event shape straight to a row dict (see jsonb_native.py);
 *       None whenever the line is anything but a plain, valid row, so that the caller's
 *       Python path produces the exact error, or the exact row, itself. Columns.add
 *       appends the same values to Arrow column buffers instead (False where parse_row
 *       gives None), so that no Python object is made per value; add_block does it for
 *       every line of a block of bytes, without the GIL (one builder per thread), up to
 *       the first line that is neither plain valid nor blank. finish() hands the buffers
 *       over to Python without copying them.
 *   find_lines(data, start, end, n) -> (pos, found), buffer(size)
 *       Helpers of the block reader (sources/_parallel.py): the offset after the n-th
 *       newline; a writable buffer to read a file into.
 *
 * Nothing here reads outside [start, end) of the bytes given, whatever they hold (invalid
 * UTF-8, NUL bytes, a cut-off line): a line is parsed between its start and the byte
 * after its newline (or end).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#ifdef __linux__
#include <sys/mman.h>
/* Buffers this big are mapped with transparent huge pages asked for: a batch's columns are
 * fresh memory every time (handed over to Arrow), and faulting them in 4 KiB pages costs
 * more than parsing. */
#define BIG_BYTES ((size_t)4 << 20)
#define HUGE_PAGE ((size_t)2 << 20)
#endif

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
    int mapped; /* data is an mmap of cap bytes (else PyMem_Raw memory) */
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

/* Memory of at least cap bytes: mapped (*mapped = 1, cap rounded up) when big. No GIL. */
static char *mem_alloc(size_t *cap, int *mapped) {
#ifdef __linux__
    if (*cap >= BIG_BYTES) {
        size_t size = (*cap + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
        (void)madvise(p, size, MADV_HUGEPAGE); /* a hint: fine if refused */
        *cap = size;
        *mapped = 1;
        return p;
    }
#endif
    *mapped = 0;
    return PyMem_RawMalloc(*cap ? *cap : 1);
}

static void mem_free(char *data, size_t cap, int mapped) {
#ifdef __linux__
    if (mapped) {
        munmap(data, cap);
        return;
    }
#endif
    (void)cap;
    (void)mapped;
    PyMem_RawFree(data);
}

/* Room for extra more bytes. No GIL needed (Columns.add_block). */
static int buf_grow(Buf *b, size_t extra) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
#ifdef __linux__
    if (cap >= BIG_BYTES) {
        if (b->mapped) {
            size_t size = (cap + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
            void *p = mremap(b->data, b->cap, size, MREMAP_MAYMOVE);
            if (p == MAP_FAILED) return -1;
            b->data = p;
            b->cap = size;
            return 0;
        }
        int mapped;
        char *d = mem_alloc(&cap, &mapped);
        if (d == NULL) return -1;
        if (b->len) memcpy(d, b->data, b->len);
        PyMem_RawFree(b->data);
        b->data = d;
        b->cap = cap;
        b->mapped = mapped;
        return 0;
    }
#endif
    char *d = PyMem_RawRealloc(b->data, cap);
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

/* Append n bytes of src to b; -1 (P->err set) on no memory. */
static inline int put_bytes(Parser *P, Buf *b, const void *src, size_t n) {
    RESERVE(P, b, n);
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

static void buf_free(Buf *b) {
    if (b->data != NULL) mem_free(b->data, b->cap, b->mapped);
    b->data = NULL;
    b->len = b->cap = 0;
    b->mapped = 0;
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

/* The first byte at or after p (before end) that is '"', '\\', below 0x20 or above 0x7f. */
static inline const unsigned char *plain_ascii_run(const unsigned char *p, const unsigned char *end) {
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        /* signed: below 0x20 is 0x00-0x1f and 0x80-0xff */
        __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                    _mm_cmplt_epi8(v, space));
        int mask = _mm_movemask_epi8(stop);
        if (mask) return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
#endif
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++;
    return p;
}

/* The closing quote of a JSON string whose text starts at s (just after its opening
 * quote), if that text is plain ASCII that needs no decoding (no escape, no control
 * character); else NULL, for decode_string to judge. */
static inline const unsigned char *plain_string_end(const unsigned char *s, const unsigned char *end) {
    const unsigned char *e = plain_ascii_run(s, end);
    return e < end && *e == '"' ? e : NULL;
}

/* The first index at or after i (before n) of '"', '\\' or a byte below 0x20. */
static inline size_t plain_utf8_run(const char *s, size_t i, size_t n) {
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'),
                  control = _mm_set1_epi8(0x1f);
    while (n - i >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
        /* unsigned v <= 0x1f: min(v, 0x1f) == v */
        __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                    _mm_cmpeq_epi8(_mm_min_epu8(v, control), v));
        int mask = _mm_movemask_epi8(stop);
        if (mask) return i + (size_t)__builtin_ctz((unsigned)mask);
        i += 16;
    }
#endif
    while (i < n && (unsigned char)s[i] >= 0x20 && s[i] != '"' && s[i] != '\\') i++;
    return i;
}

/* Decode the JSON string at P->p (on its opening quote) and append its raw UTF-8 to dst. */
static int decode_string(Parser *P, Buf *dst) {
    const unsigned char *p = P->p + 1, *end = P->end;
    for (;;) {
        const unsigned char *run = p;
        p = plain_ascii_run(p, end);
        if (p > run && put_bytes(P, dst, run, (size_t)(p - run)) < 0) return -1;
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
            if (put_bytes(P, dst, p, (size_t)n) < 0) return -1;
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
        i = plain_utf8_run(s, i, n);
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
    const unsigned char *s = P->p + 1, *e = plain_string_end(s, P->end);
    if (e != NULL) { /* nothing to decode or escape: copied as it is */
        size_t n = (size_t)(e - s);
        RESERVE(P, out, n + 2);
        char *d = out->data + out->len;
        d[0] = '"';
        memcpy(d + 1, s, n);
        d[n + 1] = '"';
        out->len += n + 2;
        P->p = e + 1;
        return 0;
    }
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
        return put_bytes(P, out, s, total);
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

/* An object as jsonb renders it: keys ordered by (length, bytes), a later duplicate wins.
 *
 * While the keys are plain (printable ASCII, nothing to escape) and already in that order
 * (as in any export of jsonb), the object is written out in its final form as it is read.
 * From the first key that is not, keys are stored decoded instead, and the entries are
 * sorted and assembled at the end; what was written so far is read back by its offsets,
 * so that nothing is parsed twice. */
static int parse_object(Parser *P, Buf *out) {
    P->p++; /* '{' */
    skip_ws(P);
    if (P->p < P->end && *P->p == '}') {
        P->p++;
        return put_bytes(P, out, "{}", 2);
    }
    size_t base = out->len;
    RESERVE(P, out, 1);
    out->data[out->len++] = '{';
    Entry local[16];
    Entry *entries = local;
    size_t n = 0, cap = 16;
    int rc = -1, in_order = 1;
    for (;;) {
        skip_ws(P);
        if (P->p >= P->end || *P->p != '"') {
            fail(P, E_INVALID, "expected a property name");
            goto done;
        }
        if (n == cap) {
            Entry *grown = PyMem_RawMalloc(2 * cap * sizeof(Entry));
            if (grown == NULL) {
                fail(P, E_NOMEM, "out of memory");
                goto done;
            }
            memcpy(grown, entries, n * sizeof(Entry));
            if (entries != local) PyMem_RawFree(entries);
            entries = grown;
            cap *= 2;
        }
        Entry *e = &entries[n];
        e->idx = n;
        if (in_order) {
            const unsigned char *ks = P->p + 1, *ke = plain_string_end(ks, P->end);
            size_t kl = ke ? (size_t)(ke - ks) : 0;
            int plain = ke != NULL;
            if (plain && n > 0) { /* strictly after the previous key (equal: a duplicate) */
                const Entry *prev = &entries[n - 1];
                plain = kl > prev->klen ||
                        (kl == prev->klen && memcmp(out->data + prev->koff, ks, kl) < 0);
            }
            if (plain) {
                if (out->len + kl + 6 > out->cap && buf_grow(out, kl + 6) < 0) {
                    fail(P, E_NOMEM, "out of memory");
                    goto done;
                }
                char *d = out->data + out->len;
                if (n > 0) {
                    *d++ = ',';
                    *d++ = ' ';
                }
                *d++ = '"';
                e->koff = (size_t)(d - out->data);
                memcpy(d, ks, kl);
                d += kl;
                *d++ = '"';
                *d++ = ':';
                *d++ = ' ';
                out->len = (size_t)(d - out->data);
                e->klen = kl;
                P->p = ke + 1;
            } else {
                in_order = 0;
            }
        }
        if (!in_order) {
            e->koff = out->len;
            if (decode_string(P, out) < 0) goto done;
            e->klen = out->len - e->koff;
        }
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
    if (in_order) { /* written out already */
        if (out->len + 1 > out->cap && buf_grow(out, 1) < 0) {
            fail(P, E_NOMEM, "out of memory");
            goto done;
        }
        out->data[out->len++] = '}';
        rc = 0;
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
    if (entries != local) PyMem_RawFree(entries);
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
    return put_bytes(P, out, word, n);
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
    const char *fname; /* UTF-8 of field (cached by the str object, which the spec holds) */
    Py_ssize_t fnamelen;
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
        fs[i].fname = PyUnicode_AsUTF8AndSize(fs[i].field, &fs[i].fnamelen);
        if (fs[i].fname == NULL) return -1;
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
 * back to the Python path; -1: out of memory (no exception set: runs without the GIL).
 *
 * dest: NULL, or per field the buffer its text or jsonb value is written to (a column's
 * data, to save a copy; NULL for the scratch buffer). A value written there ends its
 * buffer; on a fall back every dest buffer is as it was. */
static int scan_line(LineState *L, const char *raw, Py_ssize_t rawlen, const FieldSpec *fs,
                     Py_ssize_t nf, Slot *slots, Buf *const *dest) {
    Parser *P = &L->P;
    P->p = (const unsigned char *)raw;
    P->end = P->p + rawlen;
    P->err = E_OK;
    P->why = NULL;
    P->depth = 1;
    Buf *key = &L->key, *sc = &L->scratch;
    Py_ssize_t hint = 0;
    size_t base[MAX_FIELDS];
    sc->len = 0;
    for (Py_ssize_t i = 0; i < nf; i++) {
        slots[i].state = S_ABSENT;
        if (dest && dest[i]) base[i] = dest[i]->len;
    }

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
            const char *kdata;
            size_t klen;
            const unsigned char *kend = plain_string_end(P->p + 1, P->end);
            if (kend != NULL) { /* a plain key: compared where it is */
                kdata = (const char *)P->p + 1;
                klen = (size_t)(kend - P->p - 1);
                P->p = kend + 1;
            } else {
                key->len = 0;
                if (decode_string(P, key) < 0) goto fall;
                kdata = key->data;
                klen = key->len;
            }
            skip_ws(P);
            if (P->p >= P->end || *P->p != ':') goto fall;
            P->p++;
            skip_ws(P);
            Py_ssize_t idx = -1;
            /* keys usually come in spec order: look from after the last match */
            for (Py_ssize_t k = 0; k < nf; k++) {
                Py_ssize_t i = hint + k < nf ? hint + k : hint + k - nf;
                if ((size_t)fs[i].klen == klen && (klen == 0 || memcmp(fs[i].key, kdata, klen) == 0)) {
                    idx = i;
                    hint = i + 1 < nf ? i + 1 : 0;
                    break;
                }
            }
            if (P->p >= P->end) goto fall;
            unsigned char c = *P->p;
            Buf *out = sc;
            if (idx >= 0 && dest && dest[idx]) {
                out = dest[idx];
                out->len = base[idx]; /* a repeated key: the later value wins */
            }
            size_t off = out->len, scoff = sc->len;
            if (idx < 0) {
                if (parse_value(P, sc) < 0) goto fall; /* validated, then dropped */
                sc->len = scoff;
            } else if (c == 'n') {
                if (literal(P, sc, "null", 4) < 0) goto fall;
                sc->len = scoff;
                slots[idx].state = S_NULL;
            } else if (fs[idx].kind == K_TEXT) {
                if (c != '"') goto fall;
                if (decode_string(P, out) < 0) goto fall;
                slots[idx].state = S_VALUE;
                slots[idx].off = off;
                slots[idx].len = out->len - off;
            } else if (fs[idx].kind == K_JSONB) {
                if (parse_value(P, out) < 0) goto fall;
                slots[idx].state = S_VALUE;
                slots[idx].off = off;
                slots[idx].len = out->len - off;
            } else { /* K_INT: a plain JSON integer that surely fits int64 */
                if (c != '-' && !IS_DIGIT(c)) goto fall;
                const unsigned char *start = P->p;
                if (parse_number(P, sc) < 0) goto fall;
                sc->len = scoff;
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
        if (dest && dest[i] && slots[i].state != S_VALUE) dest[i]->len = base[i];
    }
    return 0;
fall:
    if (dest)
        for (Py_ssize_t i = 0; i < nf; i++)
            if (dest[i]) dest[i]->len = base[i];
    if (P->err == E_NOMEM) return -1;
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
    int rc = scan_line(&L, PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), fs, nf, slots,
                       NULL);
    if (rc < 0) {
        PyErr_NoMemory();
        goto done;
    }
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

/* Memory handed over to Python by finish(): a read-only buffer (for pyarrow.py_buffer),
 * freed with the object, so that a batch's column data is never copied. */
typedef struct {
    PyObject_HEAD
    char *data;
    Py_ssize_t len;
    size_t cap;
    int mapped, writable;
} Chunk;

static int Chunk_getbuffer(Chunk *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->data, self->len, !self->writable, flags);
}

static void Chunk_dealloc(Chunk *self) {
    mem_free(self->data, self->cap, self->mapped);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyBufferProcs Chunk_as_buffer = {
    .bf_getbuffer = (getbufferproc)Chunk_getbuffer,
};

static PyTypeObject ChunkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "caracal_forensics._jsonb_native.Chunk",
    .tp_doc = "Column memory of a finished batch (a read-only buffer).",
    .tp_basicsize = sizeof(Chunk),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)Chunk_dealloc,
    .tp_as_buffer = &Chunk_as_buffer,
};

/* A Chunk owning b's memory; b starts over empty with room for as much (untouched memory
 * costs nothing until written). NULL with an exception set on failure (b unchanged). */
static PyObject *chunk_take(Buf *b) {
    size_t cap = b->cap ? b->cap : 256;
    int mapped;
    char *fresh = mem_alloc(&cap, &mapped);
    if (fresh == NULL) return PyErr_NoMemory();
    if (b->data == NULL) { /* never written: hand over an empty buffer that exists */
        b->cap = 1;
        b->mapped = 0;
        b->data = PyMem_RawMalloc(1);
    }
    Chunk *c = b->data ? PyObject_New(Chunk, &ChunkType) : NULL;
    if (c == NULL) {
        mem_free(fresh, cap, mapped);
        return b->data ? NULL : PyErr_NoMemory();
    }
    c->data = b->data;
    c->len = (Py_ssize_t)b->len;
    c->cap = b->cap;
    c->mapped = b->mapped;
    c->writable = 0;
    b->data = fresh;
    b->len = 0;
    b->cap = cap;
    b->mapped = mapped;
    return (PyObject *)c;
}

/* buffer(size) -> a writable buffer of size bytes (uninitialised; mapped when big), to
 * read a file into without the allocator's page faults. */
static PyObject *new_buffer(PyObject *self, PyObject *arg) {
    (void)self;
    Py_ssize_t size = PyLong_AsSsize_t(arg);
    if (size == -1 && PyErr_Occurred()) return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "buffer() size must not be negative");
        return NULL;
    }
    size_t cap = (size_t)size;
    int mapped;
    char *data = mem_alloc(&cap, &mapped);
    if (data == NULL) return PyErr_NoMemory();
    Chunk *c = PyObject_New(Chunk, &ChunkType);
    if (c == NULL) {
        mem_free(data, cap, mapped);
        return NULL;
    }
    c->data = data;
    c->len = size;
    c->cap = cap ? cap : 1;
    c->mapped = mapped;
    c->writable = 1;
    return (PyObject *)c;
}

/* Errors of the GIL-free column code (no exception set until raise_col_error). */
enum { C_OK = 0, C_NOMEM = -1, C_TOOBIG = -2 };

static PyObject *raise_col_error(int err) {
    if (err == C_TOOBIG)
        PyErr_SetString(PyExc_OverflowError, "more than 2 GiB of text in one column of a batch");
    else
        PyErr_NoMemory();
    return NULL;
}

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
    Buf lines;                /* int64 line number per row (source_line) */
    Py_ssize_t rows;
    Slot slots[MAX_FIELDS];
    Buf *dest[MAX_FIELDS]; /* text and jsonb values are parsed straight into cols[i].data */
    LineState L;
    int busy; /* add_block runs without the GIL: refuse a second caller meanwhile */
} Columns;

static inline int col_reserve(Buf *b, size_t extra) {
    if (b->len + extra > b->cap && buf_grow(b, extra) < 0) return C_NOMEM;
    return C_OK;
}

/* Append the int64 v to b: C_OK, or C_NOMEM. */
static inline int buf_put_i64(Buf *b, long long v) {
    if (col_reserve(b, 8) < 0) return C_NOMEM;
    int64_t x = (int64_t)v;
    memcpy(b->data + b->len, &x, 8);
    b->len += 8;
    return C_OK;
}

/* End a string row where c->data ends now: its int32 end offset. */
static inline int col_end_offset(Col *c) {
    if (col_reserve(&c->offsets, 4) < 0) return C_NOMEM;
    int32_t end = (int32_t)c->data.len;
    memcpy(c->offsets.data + c->offsets.len, &end, 4);
    c->offsets.len += 4;
    return C_OK;
}

static int col_start(Col *c) {
    c->validity.len = c->offsets.len = c->data.len = 0;
    c->nulls = 0;
    if (c->kind != K_INT) return col_end_offset(c); /* the first offset, 0 */
    return C_OK;
}

static inline int col_valid_bit(Col *c, Py_ssize_t row, int valid) {
    size_t byte = (size_t)row >> 3;
    if (byte >= c->validity.len) {
        if (col_reserve(&c->validity, 1) < 0) return C_NOMEM;
        c->validity.data[c->validity.len++] = 0;
    }
    if (valid)
        c->validity.data[byte] |= (char)(1 << (row & 7));
    else
        c->nulls++;
    return C_OK;
}

/* A string value already written at the end of c->data (see scan_line's dest). */
static inline int col_commit_str(Col *c, Py_ssize_t row) {
    if (c->data.len > INT32_MAX) return C_TOOBIG;
    if (col_end_offset(c) < 0) return C_NOMEM;
    return col_valid_bit(c, row, 1);
}

static inline int col_put_str(Col *c, Py_ssize_t row, const char *s, size_t n) {
    if (c->data.len + n > INT32_MAX) return C_TOOBIG;
    if (col_reserve(&c->data, n) < 0 || col_reserve(&c->offsets, 4) < 0) return C_NOMEM;
    if (n) memmove(c->data.data + c->data.len, s, n); /* s may be that very spot */
    c->data.len += n;
    return col_commit_str(c, row);
}

static inline int col_put_int(Col *c, Py_ssize_t row, long long v) {
    if (buf_put_i64(&c->data, v) < 0) return C_NOMEM;
    return col_valid_bit(c, row, 1);
}

static inline int col_put_null(Col *c, Py_ssize_t row) {
    if (c->kind == K_INT) {
        if (buf_put_i64(&c->data, 0) < 0) return C_NOMEM;
    } else if (col_end_offset(c) < 0) {
        return C_NOMEM;
    }
    return col_valid_bit(c, row, 0);
}

static int put_line(Columns *self, long long line) { return buf_put_i64(&self->lines, line); }

static int columns_reset(Columns *self) {
    self->rows = 0;
    self->lines.len = 0;
    for (Py_ssize_t i = 0; i <= self->nf; i++)
        if (col_start(&self->cols[i]) < 0) return C_NOMEM;
    return C_OK;
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
    for (Py_ssize_t i = 0; i < self->nf; i++)
        self->dest[i] = self->cols[i].kind == K_INT ? NULL : &self->cols[i].data;
    if (columns_reset(self) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void Columns_dealloc(Columns *self) {
    for (Py_ssize_t i = 0; i <= MAX_FIELDS; i++) {
        buf_free(&self->cols[i].validity);
        buf_free(&self->cols[i].offsets);
        buf_free(&self->cols[i].data);
    }
    buf_free(&self->lines);
    line_state_free(&self->L);
    Py_XDECREF(self->spec);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int columns_ready(Columns *self) {
    if (self->spec == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Columns is not initialised");
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Columns is in use by another thread");
        return -1;
    }
    return 0;
}

/* Append the row scan_line left in self->slots (GIL-free): C_OK or an error code. */
static int append_scanned(Columns *self, long long line) {
    Py_ssize_t row = self->rows;
    Col *absent = &self->cols[self->nf];
    size_t absent_start = absent->data.len;
    int any_absent = 0;
    for (Py_ssize_t i = 0; i < self->nf; i++) {
        Slot *s = &self->slots[i];
        Col *c = &self->cols[i];
        int err;
        if (s->state == S_VALUE) {
            err = c->kind == K_INT ? col_put_int(c, row, s->ival) : col_commit_str(c, row);
        } else {
            err = col_put_null(c, row);
            if (s->state == S_ABSENT) {
                size_t n = (size_t)self->fs[i].fnamelen;
                if (col_reserve(&absent->data, n + 1) < 0) return C_NOMEM;
                if (any_absent) absent->data.data[absent->data.len++] = ',';
                memcpy(absent->data.data + absent->data.len, self->fs[i].fname, n);
                absent->data.len += n;
                any_absent = 1;
            }
        }
        if (err < 0) return err;
    }
    int err;
    if (any_absent) {
        size_t n = absent->data.len - absent_start;
        absent->data.len = absent_start;
        err = col_put_str(absent, row, absent->data.data + absent_start, n);
    } else {
        err = col_put_null(absent, row);
    }
    if (err < 0) return err;
    if ((err = put_line(self, line)) < 0) return err;
    self->rows++;
    return C_OK;
}

static PyObject *Columns_add(Columns *self, PyObject *raw) {
    if (columns_ready(self) < 0) return NULL;
    if (!PyBytes_Check(raw)) {
        PyErr_SetString(PyExc_TypeError, "add() needs bytes");
        return NULL;
    }
    int rc = scan_line(&self->L, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), self->fs,
                       self->nf, self->slots, self->dest);
    if (rc < 0) return PyErr_NoMemory();
    if (rc > 0) Py_RETURN_FALSE;
    int err = append_scanned(self, 0);
    if (err < 0) return raise_col_error(err);
    Py_RETURN_TRUE;
}

/* Python's bytes.strip() whitespace */
static inline int is_py_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\x0b' || c == '\x0c';
}

/* add_block(data, start, end, line, max_len=-1) -> (pos, line, stopped): the lines of
 * data[start:end] (split after each b"\n"; the last may lack it), numbered from line.
 * Appends each plain valid line, skips blank ones (bytes.strip() empty), and stops at the
 * first other line (or one longer than max_len bytes, its newline not counted, if >= 0):
 * (its offset, its number, True); at end: (end, the next number, False). Runs without the
 * GIL; the buffer (bytes or any contiguous buffer) must not change meanwhile. */
static PyObject *Columns_add_block(Columns *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start, end;
    long long line;
    Py_ssize_t max_len = -1;
    if (!PyArg_ParseTuple(args, "y*nnL|n:add_block", &view, &start, &end, &line, &max_len))
        return NULL;
    if (columns_ready(self) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if (start < 0 || end > view.len || start > end) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "add_block(): start and end must lie within data");
        return NULL;
    }
    const char *base = view.buf;
    Py_ssize_t pos = start;
    int stopped = 0, err = C_OK;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    while (pos < end) {
        const char *s = base + pos;
        const char *nl = memchr(s, '\n', (size_t)(end - pos));
        Py_ssize_t len = nl ? (Py_ssize_t)(nl - s) + 1 : end - pos;
        if (max_len >= 0 && len - (nl != NULL) > max_len) {
            stopped = 1; /* longer than the caller's maximum: its Python path refuses it */
            break;
        }
        Py_ssize_t i = 0;
        while (i < len && is_py_space((unsigned char)s[i])) i++;
        if (i < len) {
            int rc = scan_line(&self->L, s, len, self->fs, self->nf, self->slots, self->dest);
            if (rc < 0) {
                err = C_NOMEM;
                break;
            }
            if (rc > 0) {
                stopped = 1;
                break;
            }
            if ((err = append_scanned(self, line)) < 0) break;
        }
        pos += len;
        line++;
    }
    Py_END_ALLOW_THREADS
    self->busy = 0;
    PyBuffer_Release(&view);
    if (err < 0) return raise_col_error(err);
    return Py_BuildValue("nLO", pos, line, stopped ? Py_True : Py_False);
}

/* add_values(values, line=0): a row the Python path made; one value per field, then
 * absent_fields (None, str, or int for an int field). */
static PyObject *Columns_add_values(Columns *self, PyObject *args) {
    PyObject *values;
    long long line = 0;
    if (!PyArg_ParseTuple(args, "O|L:add_values", &values, &line)) return NULL;
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
        if (err < 0) {
            raise_col_error(err);
            goto fail;
        }
    }
    if (put_line(self, line) < 0) {
        PyErr_NoMemory();
        goto fail;
    }
    self->rows++;
    Py_DECREF(seq);
    Py_RETURN_NONE;
fail:
    Py_DECREF(seq);
    return NULL;
}

/* finish() -> (rows, [per column: (validity | None, offsets | None, data)], lines): the
 * Arrow buffers (read-only buffer objects, not copies) and the int64 line numbers; then
 * the builder starts over empty. */
static PyObject *Columns_finish(Columns *self, PyObject *unused) {
    (void)unused;
    if (columns_ready(self) < 0) return NULL;
    PyObject *list = PyList_New(self->nf + 1);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0; i <= self->nf; i++) {
        Col *c = &self->cols[i];
        PyObject *validity = c->nulls ? chunk_take(&c->validity) : Py_NewRef(Py_None);
        PyObject *offsets = c->kind == K_INT || validity == NULL ? Py_NewRef(Py_None)
                                                                 : chunk_take(&c->offsets);
        PyObject *data = validity && offsets ? chunk_take(&c->data) : NULL;
        PyObject *t = (validity && offsets && data) ? PyTuple_Pack(3, validity, offsets, data) : NULL;
        Py_XDECREF(validity);
        Py_XDECREF(offsets);
        Py_XDECREF(data);
        if (t == NULL) {
            Py_DECREF(list);
            columns_reset(self); /* handed-over buffers are gone: start over consistently */
            return NULL;
        }
        PyList_SET_ITEM(list, i, t);
    }
    PyObject *lines = chunk_take(&self->lines);
    PyObject *result = lines ? Py_BuildValue("nNN", self->rows, list, lines) : NULL;
    if (result == NULL) Py_DECREF(list);
    if (columns_reset(self) < 0) {
        Py_XDECREF(result);
        return PyErr_NoMemory();
    }
    return result;
}

static Py_ssize_t Columns_len(Columns *self) { return self->rows; }

static PyMethodDef Columns_methods[] = {
    {"add", (PyCFunction)Columns_add, METH_O,
     "add(raw: bytes) -> bool: append a plain valid line; False (nothing appended) otherwise."},
    {"add_block", (PyCFunction)Columns_add_block, METH_VARARGS,
     "add_block(data, start, end, line, max_len=-1) -> (pos, line, stopped): append the plain valid lines "
     "of data[start:end], without the GIL, up to the first line that is neither plain valid "
     "nor blank."},
    {"add_values", (PyCFunction)Columns_add_values, METH_VARARGS,
     "add_values(values, line=0): append a row made elsewhere (one value per field, then "
     "absent_fields)."},
    {"finish", (PyCFunction)Columns_finish, METH_NOARGS,
     "finish() -> (rows, [(validity, offsets, data)], lines): the Arrow buffers; starts over "
     "empty."},
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

/* find_lines(data, start, end, n) -> (pos, found): the offset just after the n-th b"\n" of
 * data[start:end] (found == n), or (end, the number of newlines there) if it holds fewer. */
static PyObject *find_lines(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    Py_ssize_t start, end, n;
    if (!PyArg_ParseTuple(args, "y*nnn:find_lines", &view, &start, &end, &n)) return NULL;
    if (start < 0 || end > view.len || start > end || n < 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "find_lines(): bad range");
        return NULL;
    }
    const char *base = view.buf;
    Py_ssize_t pos = start, found = 0;
    Py_BEGIN_ALLOW_THREADS
    while (found < n && pos < end) {
        const char *nl = memchr(base + pos, '\n', (size_t)(end - pos));
        if (nl == NULL) {
            pos = end;
            break;
        }
        pos = (Py_ssize_t)(nl - base) + 1;
        found++;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return Py_BuildValue("nn", pos, found);
}

static PyMethodDef methods[] = {
    {"canonical", canonical, METH_O,
     "canonical(text: str | bytes) -> str | None: PostgreSQL jsonb::text of a JSON document "
     "(ValueError if jsonb rejects it, None if nested too deeply to decide here)."},
    {"parse_row", (PyCFunction)(void (*)(void))parse_row, METH_FASTCALL,
     "parse_row(raw: bytes, spec: tuple, template: dict) -> dict | None"},
    {"buffer", new_buffer, METH_O,
     "buffer(size) -> a writable buffer of size bytes (contents undefined)."},
    {"find_lines", find_lines, METH_VARARGS,
     "find_lines(data, start, end, n) -> (pos, found): the offset after the n-th newline."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_jsonb_native", "PostgreSQL jsonb::text kernel.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__jsonb_native(void) {
    if (PyType_Ready(&ColumnsType) < 0 || PyType_Ready(&ChunkType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Columns", (PyObject *)&ColumnsType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

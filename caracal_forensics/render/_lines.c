/* Optional C kernel: the ``tail --json`` lines of events, straight from Arrow buffers.
 *
 * The references are caracal_forensics/render/records.py: ``json_lines`` (Python) and
 * ``json_line_sql`` (DuckDB); this kernel writes the same bytes (tested against both in
 * tests/unit/render/test_native_lines.py). What a line holds, field by field:
 *   text   a JSON string as Python's json.encoder.encode_basestring writes it: `"` and
 *          `\` escaped, \n \r \t \b \f in their short forms, other bytes < 0x20 as
 *          \u00xx (small hex digits); everything else (0x7f, non-ASCII) as it is;
 *   json   the stored jsonb text, spliced as it is (kind 4: "" is NULL, as the view
 *          unique_events makes it, for columns read from the files themselves);
 *   time   timestamp[us] as DuckDB's strftime(.. AT TIME ZONE 'UTC',
 *          '%Y-%m-%dT%H:%M:%S.%fZ') in quotes; years 1..9999 only (the caller checks,
 *          and leaves other slices to DuckDB: a time outside raises ValueError here);
 *   int    int64 in decimal;
 *   NULL   null; an optional field named in the row's absent_fields is left out.
 *
 *   Table(rows, starts, fields, absent)
 *       starts: int64 buffer, the first row of each Arrow batch and then ``rows``;
 *       fields: per record field (kind, optional, prefix bytes, name, chunks | None),
 *       chunks one per batch: (validity | None, offsets | None, data, offset, large),
 *       or a dictionary's (see open_chunk);
 *       absent: chunks of the absent_fields column, or None.
 *   Table.render(indices, start, end, out) -> (next, written)
 *       Writes the lines of rows indices[start:end] (an int64 buffer; None: the rows in
 *       their order) into the
 *       writable buffer ``out`` while they fit, without the GIL: returns the position
 *       after the last line written and the bytes written; written is minus the room a
 *       line needs (its length and SLACK) when not even the first one fits.
 *
 * Buffer sizes are checked when the Table is made (a Table is made per step of a sweep:
 * in constant time per chunk, but for the values of a dictionary of few values, each
 * rendered once with its field's prefix: render_snippets); a value whose offsets or
 * dictionary index are not those of a valid Arrow array is read as "", never outside
 * its buffers; render checks every row index against the row count. Values are read 16
 * bytes at a time where their buffer holds 16 bytes from there (never past its end).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define PREFIX_PAD 32
enum { K_TEXT = 0, K_JSON = 1, K_TIME = 2, K_INT = 3, K_JSON_NULLIF = 4 };

typedef struct {
    const uint8_t *validity; /* NULL: no nulls */
    const void *offsets;     /* int32 or int64; NULL for fixed width */
    const uint8_t *data;
    Py_ssize_t offset;
    int large;
    /* Dictionary-encoded: row i is value idx[offset + i] of the values, which start at
     * values_offset (validity is the indices'); NULL idx: row i is value offset + i. */
    const int32_t *idx;
    Py_ssize_t values_offset, n_values;
    int64_t data_len; /* every value is read within it */
    /* Dictionary-encoded with few values: each value's whole field (prefix and value as
     * written) rendered once, value k at snips[snip_offsets[k]:snip_offsets[k + 1]],
     * SNIP_PAD readable bytes after the last; NULL: rendered row by row. */
    char *snips;
    int64_t *snip_offsets;
} Chunk;

typedef struct {
    int kind, optional, present;
    const char *prefix;
    Py_ssize_t prefix_len;
    /* the prefix again, followed by zeros, when it is at most PREFIX_PAD bytes: copied
     * PREFIX_PAD bytes at once (a call to memcpy per field took a tenth of a line) */
    char prefix_pad[PREFIX_PAD];
    const char *name; /* for absent_fields, without quotes */
    Py_ssize_t name_len;
    Chunk *chunks; /* one per batch */
} Field;

typedef struct {
    PyObject_HEAD
    Py_ssize_t rows, batches;
    int64_t *starts; /* batches + 1 */
    int nfields;
    Field *fields;
    Chunk *absent; /* NULL: no absent_fields column */
    PyObject *keep;  /* list of the objects whose buffers are held */
    Py_buffer *views;
    Py_ssize_t nviews, capviews;
} Table;

/* --- holding buffers --------------------------------------------------------------- */

static const void *hold(Table *t, PyObject *obj, Py_ssize_t *len) {
    if (t->nviews == t->capviews) {
        Py_ssize_t cap = t->capviews ? t->capviews * 2 : 64;
        Py_buffer *grown = PyMem_Realloc(t->views, cap * sizeof(Py_buffer));
        if (!grown) {
            PyErr_NoMemory();
            return NULL;
        }
        t->views = grown;
        t->capviews = cap;
    }
    Py_buffer *view = &t->views[t->nviews];
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0) return NULL;
    t->nviews++;
    *len = view->len;
    return view->buf;
}

static int check_len(int ok, const char *what) {
    if (!ok) PyErr_Format(PyExc_ValueError, "%s buffer too short", what);
    return ok ? 0 : -1;
}

/* Opens one chunk of ``rows`` rows: (validity | None, offsets | None, data, offset, large)
 * and, dictionary-encoded, (indices, n_values): then offsets and data are the values',
 * ``offset`` theirs, and validity and the int32 indices start at row ``index_offset``:
 * (validity | None, offsets, data, values offset, large, indices, index_offset, n_values). */
static int open_chunk(Table *t, PyObject *spec, Py_ssize_t rows, int fixed, Chunk *out) {
    PyObject *v, *o, *d, *ix = Py_None;
    Py_ssize_t offset, index_offset = 0, n_values = 0;
    int large;
    if (!PyArg_ParseTuple(spec, "OOOnp|Onn", &v, &o, &d, &offset, &large, &ix, &index_offset,
                          &n_values))
        return -1;
    if (offset < 0 || index_offset < 0 || n_values < 0) return check_len(0, "offset");
    Py_ssize_t len;
    int dictionary = ix != Py_None && !fixed;
    out->offset = dictionary ? index_offset : offset;
    out->values_offset = offset;
    out->large = large;
    out->validity = NULL;
    out->offsets = NULL;
    out->idx = NULL;
    if (v != Py_None) {
        out->validity = hold(t, v, &len);
        if (!out->validity || check_len(len * 8 >= out->offset + rows, "validity") < 0)
            return -1;
    }
    Py_ssize_t data_len;
    out->data = hold(t, d, &data_len);
    if (!out->data) return -1;
    if (fixed) return check_len(data_len >= (offset + rows) * 8, "data");
    out->offsets = hold(t, o, &len);
    if (!out->offsets) return -1;
    Py_ssize_t width = large ? 8 : 4, values = dictionary ? n_values : rows;
    if (check_len(len >= (offset + values + 1) * width, "offsets") < 0) return -1;
    /* the first and last offsets only: a value whose offsets are out of order or past
     * the data is read as "" (value_at), never outside the buffer */
    int64_t first = large ? ((const int64_t *)out->offsets)[offset]
                          : ((const int32_t *)out->offsets)[offset];
    int64_t last = large ? ((const int64_t *)out->offsets)[offset + values]
                         : ((const int32_t *)out->offsets)[offset + values];
    if (first < 0 || last > data_len || first > last) return check_len(0, "data");
    out->data_len = data_len;
    out->n_values = n_values;
    if (!dictionary) return 0;
    out->idx = hold(t, ix, &len);
    if (!out->idx || check_len(len >= (index_offset + rows) * 4, "indices") < 0) return -1;
    return 0; /* an index out of range is read as "" (value_at) */
}

static int open_chunks(Table *t, PyObject *list, int fixed, Chunk **out) {
    if (!PyList_Check(list) || PyList_GET_SIZE(list) != t->batches) {
        PyErr_SetString(PyExc_ValueError, "one chunk per batch expected");
        return -1;
    }
    *out = PyMem_Calloc(t->batches ? t->batches : 1, sizeof(Chunk));
    if (!*out) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t b = 0; b < t->batches; b++) {
        if (open_chunk(t, PyList_GET_ITEM(list, b), t->starts[b + 1] - t->starts[b], fixed,
                       &(*out)[b]) < 0)
            return -1;
    }
    return 0;
}

static int render_snippets(Table *t, Field *field);

static void Table_dealloc(Table *t) {
    for (Py_ssize_t i = 0; i < t->nviews; i++) PyBuffer_Release(&t->views[i]);
    PyMem_Free(t->views);
    if (t->fields)
        for (int f = 0; f < t->nfields; f++) {
            Chunk *chunks = t->fields[f].chunks;
            for (Py_ssize_t b = 0; chunks && b < t->batches; b++) {
                PyMem_Free(chunks[b].snips);
                PyMem_Free(chunks[b].snip_offsets);
            }
            PyMem_Free(chunks);
        }
    PyMem_Free(t->fields);
    PyMem_Free(t->absent);
    PyMem_Free(t->starts);
    Py_XDECREF(t->keep);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static int Table_init(Table *t, PyObject *args, PyObject *kwargs) {
    Py_ssize_t rows;
    PyObject *starts, *fields, *absent;
    if (!PyArg_ParseTuple(args, "nOOO", &rows, &starts, &fields, &absent)) return -1;
    if (t->starts) {
        PyErr_SetString(PyExc_RuntimeError, "Table is made once");
        return -1;
    }
    t->keep = Py_BuildValue("(OOO)", starts, fields, absent);
    if (!t->keep) return -1;
    Py_ssize_t len;
    const int64_t *s = hold(t, starts, &len);
    if (!s) return -1;
    if (len < 8 || len % 8) return check_len(0, "starts");
    t->batches = len / 8 - 1;
    t->rows = rows;
    t->starts = PyMem_Malloc(len);
    if (!t->starts) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(t->starts, s, len);
    if (t->starts[0] != 0 || t->starts[t->batches] != rows) return check_len(0, "starts");
    for (Py_ssize_t b = 0; b < t->batches; b++)
        if (t->starts[b] > t->starts[b + 1]) return check_len(0, "starts");
    if (!PyList_Check(fields)) {
        PyErr_SetString(PyExc_TypeError, "fields must be a list");
        return -1;
    }
    t->nfields = (int)PyList_GET_SIZE(fields);
    t->fields = PyMem_Calloc(t->nfields ? t->nfields : 1, sizeof(Field));
    if (!t->fields) {
        PyErr_NoMemory();
        return -1;
    }
    for (int f = 0; f < t->nfields; f++) {
        Field *field = &t->fields[f];
        PyObject *chunks, *prefix, *name;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(fields, f), "ipSSO", &field->kind,
                              &field->optional, &prefix, &name, &chunks))
            return -1;
        if (field->kind < K_TEXT || field->kind > K_JSON_NULLIF) {
            PyErr_SetString(PyExc_ValueError, "unknown field kind");
            return -1;
        }
        field->prefix = PyBytes_AS_STRING(prefix);
        field->prefix_len = PyBytes_GET_SIZE(prefix);
        memset(field->prefix_pad, 0, PREFIX_PAD);
        if (field->prefix_len <= PREFIX_PAD)
            memcpy(field->prefix_pad, field->prefix, field->prefix_len);
        field->name = PyBytes_AS_STRING(name);
        field->name_len = PyBytes_GET_SIZE(name);
        field->present = chunks != Py_None;
        if (field->present &&
            open_chunks(t, chunks, field->kind == K_TIME || field->kind == K_INT,
                        &field->chunks) < 0)
            return -1;
        if (field->present && render_snippets(t, field) < 0) return -1;
    }
    if (absent != Py_None && open_chunks(t, absent, 0, &t->absent) < 0) return -1;
    return 0;
}

/* --- one line ---------------------------------------------------------------------- */

static const char HEX[] = "0123456789abcdef";

/* Bytes a byte takes in a JSON string (1, 2 or 6). */
static uint8_t ESCAPED_LEN[256];

static void init_tables(void) {
    for (int c = 0; c < 256; c++) ESCAPED_LEN[c] = c < 0x20 ? 6 : 1;
    ESCAPED_LEN['"'] = ESCAPED_LEN['\\'] = 2;
    ESCAPED_LEN['\n'] = ESCAPED_LEN['\r'] = ESCAPED_LEN['\t'] = 2;
    ESCAPED_LEN['\b'] = ESCAPED_LEN['\f'] = 2;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

#ifndef __SSE2__
/* Whether any of 8 bytes is < 0x20, '"' or '\\'. */
static inline int special8(uint64_t v) {
    uint64_t low = (v - ONES * 0x20) & ~v;
    uint64_t q = v ^ (ONES * '"');
    uint64_t b = v ^ (ONES * '\\');
    return (((q - ONES) & ~q) | ((b - ONES) & ~b) | low) & HIGHS ? 1 : 0;
}
#endif

static inline char *put_escape(char *dst, uint8_t c) {
    *dst++ = '\\';
    switch (c) {
    case '"': *dst++ = '"'; break;
    case '\\': *dst++ = '\\'; break;
    case '\n': *dst++ = 'n'; break;
    case '\r': *dst++ = 'r'; break;
    case '\t': *dst++ = 't'; break;
    case '\b': *dst++ = 'b'; break;
    case '\f': *dst++ = 'f'; break;
    default:
        memcpy(dst, "u00", 3);
        dst[3] = HEX[c >> 4];
        dst[4] = HEX[c & 15];
        dst += 5;
    }
    return dst;
}

/* The JSON string body of s[0:n], the bytes up to ``limit`` (the end of the value's
 * buffer) readable. Copies 16 (or 8) bytes at a time, so it may write up to SLACK bytes
 * past what it returns: the caller keeps that much room. A value's last bytes are
 * copied 16 at once too when the buffer holds 16 bytes from there (all but the values
 * at a buffer's very end): most values are short (a zone, a decision, an id's last 4
 * bytes), and a byte at a time took a quarter of the lines' time. */
#define SLACK 16
static inline char *put_escaped(char *dst, const uint8_t *s, size_t n,
                                const uint8_t *limit) {
    size_t i = 0;
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    const __m128i control = _mm_set1_epi8(0x1f);
    size_t readable = (size_t)(limit - s); /* >= n */
    while (i < n && readable - i >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
        _mm_storeu_si128((__m128i *)dst, v);
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                _mm_cmpeq_epi8(v, backslash)),
                                   _mm_cmpeq_epi8(_mm_max_epu8(v, control), control));
        unsigned mask = (unsigned)_mm_movemask_epi8(hit);
        size_t left = n - i;
        if (left < 16) mask &= (1u << left) - 1; /* the bytes past the value aside */
        if (!mask) {
            size_t step = left < 16 ? left : 16;
            i += step;
            dst += step;
            continue;
        }
        unsigned clean = (unsigned)__builtin_ctz(mask);
        dst = put_escape(dst + clean, s[i + clean]);
        i += clean + 1;
    }
#else
    (void)limit;
    while (i + 8 <= n) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        memcpy(dst, &v, 8);
        if (!special8(v)) {
            i += 8;
            dst += 8;
            continue;
        }
        size_t block = i + 8;
        while (i < block && ESCAPED_LEN[s[i]] == 1) {
            i++;
            dst++;
        }
        if (i < block) dst = put_escape(dst, s[i++]);
    }
#endif
    for (; i < n; i++) {
        uint8_t c = s[i];
        if (ESCAPED_LEN[c] == 1) *dst++ = (char)c;
        else dst = put_escape(dst, c);
    }
    return dst;
}

static inline size_t escaped_len(const uint8_t *s, size_t n) {
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += ESCAPED_LEN[s[i]];
    return len;
}

static inline int is_valid(const Chunk *c, Py_ssize_t i) {
    if (!c->validity) return 1;
    Py_ssize_t bit = c->offset + i;
    return (c->validity[bit >> 3] >> (bit & 7)) & 1;
}

/* The bytes between offsets j and j + 1 of a chunk's values ("" when the offsets are
 * not valid: never read outside the array). */
static inline const uint8_t *bytes_at(const Chunk *c, Py_ssize_t j, size_t *len) {
    int64_t start, end;
    if (c->large) {
        start = ((const int64_t *)c->offsets)[j];
        end = ((const int64_t *)c->offsets)[j + 1];
    } else {
        start = ((const int32_t *)c->offsets)[j];
        end = ((const int32_t *)c->offsets)[j + 1];
    }
    if (start < 0 || end < start || end > c->data_len) {
        *len = 0;
        return c->data;
    }
    *len = (size_t)(end - start);
    return c->data + start;
}

static inline const uint8_t *value_at(const Chunk *c, Py_ssize_t i, size_t *len) {
    Py_ssize_t j = c->offset + i;
    if (c->idx) {
        int32_t at = c->idx[j];
        if (at < 0 || at >= c->n_values) { /* not a valid array: never read outside it */
            *len = 0;
            return c->data;
        }
        j = c->values_offset + at;
    }
    return bytes_at(c, j, len);
}

static inline int64_t int_at(const Chunk *c, Py_ssize_t i) {
    int64_t v;
    memcpy(&v, c->data + (c->offset + i) * 8, 8);
    return v;
}

/* Whether the comma-separated list ``list`` names ``name`` (DuckDB's
 * list_contains(string_split(list, ','), name)). */
static int names(const uint8_t *list, size_t n, const char *name, size_t name_len) {
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || list[i] == ',') {
            if (i - start == name_len && memcmp(list + start, name, name_len) == 0) return 1;
            start = i + 1;
        }
    }
    return 0;
}

/* The first day of 0001-01-01 counted from 1970-01-01, and that of 10000-01-01. */
#define MIN_DAY (-719162LL)
#define END_DAY (2932897LL)
#define DAY_US 86400000000LL

/* "00" to "99". */
static const char DIGITS2[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static inline void put2(char *p, int64_t v) { memcpy(p, DIGITS2 + 2 * v, 2); }

/* The last day written by put_time in this thread, and its "YYYY-MM-DD": rows come in
 * time order, a day's date is worked out once (its divisions were a tenth of a line). */
static __thread int64_t last_day = INT64_MIN;
static __thread char last_date[10];

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ" with quotes (29 bytes), or NULL when outside years
 * 1..9999. Civil date from days: H. Hinnant's algorithm. */
static inline char *put_time(char *dst, int64_t us) {
    int64_t days = us / DAY_US, rem = us % DAY_US;
    if (rem < 0) {
        rem += DAY_US;
        days -= 1;
    }
    if (days < MIN_DAY || days >= END_DAY) return NULL;
    if (days != last_day) {
        int64_t z = days + 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        int64_t doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t y = yoe + era * 400;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int64_t mp = (5 * doy + 2) / 153;
        int64_t d = doy - (153 * mp + 2) / 5 + 1;
        int64_t m = mp < 10 ? mp + 3 : mp - 9;
        if (m <= 2) y += 1;
        put2(last_date, y / 100);
        put2(last_date + 2, y % 100);
        last_date[4] = '-';
        put2(last_date + 5, m);
        last_date[7] = '-';
        put2(last_date + 8, d);
        last_day = days;
    }
    int64_t secs = rem / 1000000, micros = rem % 1000000;
    char *p = dst;
    *p++ = '"';
    memcpy(p, last_date, 10);
    p[10] = 'T';
    put2(p + 11, secs / 3600);
    p[13] = ':';
    put2(p + 14, secs / 60 % 60);
    p[16] = ':';
    put2(p + 17, secs % 60);
    p[19] = '.';
    put2(p + 20, micros / 10000);
    put2(p + 22, micros / 100 % 100);
    put2(p + 24, micros % 100);
    p[26] = 'Z';
    p[27] = '"';
    return p + 28;
}

#define TIME_LEN 29
#define INT_LEN 20

/* int64 in decimal; writes INT_LEN bytes from where the digits start (room the caller
 * keeps: INT_LEN and SLACK). Two digits at a time. */
static inline char *put_int(char *dst, int64_t v) {
    char tmp[2 * INT_LEN];
    memset(tmp + INT_LEN, 0, INT_LEN); /* copied after the digits, never written out */
    char *p = tmp + INT_LEN;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    while (u >= 100) {
        p -= 2;
        put2(p, (int64_t)(u % 100));
        u /= 100;
    }
    if (u >= 10) {
        p -= 2;
        put2(p, (int64_t)u);
    } else {
        *--p = (char)('0' + u);
    }
    if (v < 0) *dst++ = '-';
    size_t n = (size_t)(tmp + INT_LEN - p);
    memcpy(dst, p, INT_LEN); /* the digits and what follows them in tmp: a fixed copy */
    return dst + n;
}

/* Bytes the line of row i of batch b takes exactly, the row's fields decided (absent,
 * null) in ``skip`` / ``null`` for put_line. */
static size_t line_len(const Table *t, Py_ssize_t b, Py_ssize_t i, uint8_t *skip,
                       uint8_t *null) {
    const uint8_t *absent = NULL;
    size_t absent_len = 0;
    if (t->absent && is_valid(&t->absent[b], i)) absent = value_at(&t->absent[b], i, &absent_len);
    size_t len = 3; /* { } \n */
    for (int f = 0; f < t->nfields; f++) {
        const Field *field = &t->fields[f];
        skip[f] = null[f] = 0;
        if (field->optional && (!field->present ||
                                (absent && names(absent, absent_len, field->name, field->name_len)))) {
            skip[f] = 1;
            continue;
        }
        len += field->prefix_len;
        if (!field->present || !is_valid(&field->chunks[b], i)) {
            null[f] = 1;
            len += 4;
            continue;
        }
        size_t n;
        switch (field->kind) {
        case K_TEXT: {
            const uint8_t *s = value_at(&field->chunks[b], i, &n);
            len += 2 + escaped_len(s, n);
            break;
        }
        case K_JSON:
        case K_JSON_NULLIF:
            value_at(&field->chunks[b], i, &n);
            if (n == 0 && field->kind == K_JSON_NULLIF) {
                null[f] = 1;
                len += 4;
                break;
            }
            len += n;
            break;
        case K_TIME: len += TIME_LEN; break;
        default: len += INT_LEN; break;
        }
    }
    return len;
}

/* The field's prefix; writes up to PREFIX_PAD bytes past it (room the caller keeps). */
static inline char *put_prefix(char *dst, const Field *field) {
    if (field->prefix_len > PREFIX_PAD) {
        memcpy(dst, field->prefix, field->prefix_len);
        return dst + field->prefix_len;
    }
#ifdef __SSE2__
    _mm_storeu_si128((__m128i *)dst, _mm_loadu_si128((const __m128i *)field->prefix_pad));
    _mm_storeu_si128((__m128i *)(dst + 16),
                     _mm_loadu_si128((const __m128i *)(field->prefix_pad + 16)));
#else
    memcpy(dst, field->prefix_pad, PREFIX_PAD);
#endif
    return dst + field->prefix_len;
}

/* s[0:n] as it is, the bytes up to ``limit`` readable; a short value is copied 16 bytes
 * at a time when the buffer holds them (up to SLACK bytes written past it). */
static inline char *put_raw(char *dst, const uint8_t *s, size_t n, const uint8_t *limit) {
#ifdef __SSE2__
    if (n <= 32 && (size_t)(limit - s) >= 32) {
        _mm_storeu_si128((__m128i *)dst, _mm_loadu_si128((const __m128i *)s));
        if (n > 16)
            _mm_storeu_si128((__m128i *)(dst + 16), _mm_loadu_si128((const __m128i *)(s + 16)));
        return dst + n;
    }
#else
    (void)limit;
#endif
    memcpy(dst, s, n);
    return dst + n;
}

/* A field's value, not NULL, at row i of chunk c (s, n: its bytes for a text or jsonb
 * field), as put_line and put_line_fast write it; NULL for a time outside years
 * 1..9999. */
static inline char *put_value(char *dst, const Field *field, const Chunk *c, Py_ssize_t i,
                              const uint8_t *s, size_t n) {
    switch (field->kind) {
    case K_TEXT:
        *dst++ = '"';
        dst = put_escaped(dst, s, n, c->data + c->data_len);
        *dst++ = '"';
        return dst;
    case K_JSON:
    case K_JSON_NULLIF:
        return put_raw(dst, s, n, c->data + c->data_len);
    case K_TIME:
        return put_time(dst, int_at(c, i));
    default:
        return put_int(dst, int_at(c, i));
    }
}

/* --- a dictionary's fields rendered once ------------------------------------------ */

/* A dictionary is rendered when each of its values is used SNIP_USES times or more on
 * average in its batch (a Table is made per step of a sweep, over every row group held:
 * its dictionaries are rendered again at every step). */
#define SNIP_USES 16
#define SNIP_PAD 32

/* Value k of a dictionary chunk's values ("" when its offsets are not valid, as
 * value_at reads it). */
static inline const uint8_t *dictionary_value(const Chunk *c, Py_ssize_t k, size_t *len) {
    return bytes_at(c, c->values_offset + k, len);
}

/* The snippets of the text and jsonb fields' dictionary chunks with few values: the
 * field's prefix and its value as put_line_fast writes them (a text value quoted and
 * escaped, "" of a kind-4 jsonb field null). The lines then copy a snippet per row
 * instead of escaping the same few values again and again (zone_id, decision, ...). */
static int render_snippets(Table *t, Field *field) {
    if (field->kind != K_TEXT && field->kind != K_JSON && field->kind != K_JSON_NULLIF)
        return 0;
    for (Py_ssize_t b = 0; b < t->batches; b++) {
        Chunk *c = &field->chunks[b];
        Py_ssize_t rows = t->starts[b + 1] - t->starts[b];
        if (!c->idx || c->n_values == 0 || c->n_values * SNIP_USES > rows) continue;
        size_t cap = SNIP_PAD + SLACK;
        for (Py_ssize_t k = 0; k < c->n_values; k++) {
            size_t n;
            dictionary_value(c, k, &n);
            cap += (size_t)field->prefix_len + (field->kind == K_TEXT ? 2 + 6 * n : n + 4);
        }
        c->snips = PyMem_Malloc(cap);
        c->snip_offsets = PyMem_Malloc((size_t)(c->n_values + 1) * sizeof(int64_t));
        if (!c->snips || !c->snip_offsets) {
            PyErr_NoMemory();
            return -1;
        }
        char *dst = c->snips;
        for (Py_ssize_t k = 0; k < c->n_values; k++) {
            c->snip_offsets[k] = dst - c->snips;
            size_t n;
            const uint8_t *value = dictionary_value(c, k, &n);
            memcpy(dst, field->prefix, field->prefix_len);
            dst += field->prefix_len;
            if (field->kind == K_JSON_NULLIF && n == 0) {
                memcpy(dst, "null", 4);
                dst += 4;
            } else {
                dst = put_value(dst, field, c, 0, value, n);
            }
        }
        c->snip_offsets[c->n_values] = dst - c->snips;
        memset(dst, 0, SNIP_PAD); /* read by the 16-byte copies, never written out */
    }
    return 0;
}

/* The snippet of row i of a rendered chunk into dst (up to SLACK bytes written past
 * it), or NULL when its index is not a valid one (then written as value_at reads it). */
static inline const char *snippet_at(const Chunk *c, Py_ssize_t i, size_t *len) {
    int32_t at = c->idx[c->offset + i];
    if (at < 0 || at >= c->n_values) return NULL;
    *len = (size_t)(c->snip_offsets[at + 1] - c->snip_offsets[at]);
    return c->snips + c->snip_offsets[at];
}

static inline char *put_snippet(char *dst, const char *s, size_t n) {
#ifdef __SSE2__
    for (size_t at = 0; at < n; at += 16)
        _mm_storeu_si128((__m128i *)(dst + at), _mm_loadu_si128((const __m128i *)(s + at)));
    return dst + n;
#else
    memcpy(dst, s, n);
    return dst + n;
#endif
}

/* Writes the line; NULL for a time outside years 1..9999. */
static char *put_line(const Table *t, Py_ssize_t b, Py_ssize_t i, char *dst,
                      const uint8_t *skip, const uint8_t *null) {
    *dst++ = '{';
    for (int f = 0; f < t->nfields; f++) {
        if (skip[f]) continue;
        const Field *field = &t->fields[f];
        memcpy(dst, field->prefix, field->prefix_len);
        dst += field->prefix_len;
        if (null[f]) {
            memcpy(dst, "null", 4);
            dst += 4;
            continue;
        }
        const Chunk *c = &field->chunks[b];
        size_t n = 0;
        const uint8_t *s = NULL;
        if (field->kind == K_TEXT || field->kind == K_JSON || field->kind == K_JSON_NULLIF)
            s = value_at(c, i, &n);
        dst = put_value(dst, field, c, i, s, n);
        if (!dst) return NULL;
    }
    *dst++ = '}';
    *dst++ = '\n';
    return dst;
}

/* What put_line_fast returns when the line may not fit in what is left. */
static char NO_ROOM_MARK;
#define NO_ROOM (&NO_ROOM_MARK)

/* The line in one pass: each field written once room for its longest form is seen
 * (else NO_ROOM, the line then sized exactly and written by put_line, or left for the
 * next buffer); NULL for a time outside years 1..9999. Fields are decided as line_len
 * decides them. */
static char *put_line_fast(const Table *t, Py_ssize_t b, Py_ssize_t i, char *dst,
                           const char *stop) {
    const uint8_t *absent = NULL;
    size_t absent_len = 0;
    if (t->absent && is_valid(&t->absent[b], i)) absent = value_at(&t->absent[b], i, &absent_len);
    if ((size_t)(stop - dst) < 3 + SLACK) return NO_ROOM;
    *dst++ = '{';
    for (int f = 0; f < t->nfields; f++) {
        const Field *field = &t->fields[f];
        if (field->optional && (!field->present ||
                                (absent && names(absent, absent_len, field->name, field->name_len))))
            continue;
        const Chunk *c = field->present ? &field->chunks[b] : NULL;
        size_t n = 0, need;
        const uint8_t *s = NULL;
        int null = !c || !is_valid(c, i);
        if (!null && c->snips) {
            const char *snippet = snippet_at(c, i, &n);
            if (snippet) {
                if ((size_t)(stop - dst) < n + 2 + SLACK) return NO_ROOM;
                dst = put_snippet(dst, snippet, n);
                continue;
            }
        }
        if (!null && (field->kind == K_TEXT || field->kind == K_JSON ||
                      field->kind == K_JSON_NULLIF)) {
            s = value_at(c, i, &n);
            null = n == 0 && field->kind == K_JSON_NULLIF;
        }
        if (null) need = 4;
        else if (field->kind == K_TEXT) need = 2 + 6 * n;
        else if (field->kind == K_TIME) need = TIME_LEN;
        else if (field->kind == K_INT) need = INT_LEN;
        else need = n;
        if ((size_t)(stop - dst) < field->prefix_len + need + 2 + SLACK + PREFIX_PAD)
            return NO_ROOM;
        dst = put_prefix(dst, field);
        if (null) {
            memcpy(dst, "null", 4);
            dst += 4;
            continue;
        }
        dst = put_value(dst, field, c, i, s, n);
        if (!dst) return NULL;
    }
    *dst++ = '}';
    *dst++ = '\n';
    return dst;
}

static inline Py_ssize_t batch_of(const Table *t, int64_t row, Py_ssize_t guess) {
    if (t->starts[guess] <= row && row < t->starts[guess + 1]) return guess;
    Py_ssize_t lo = 0, hi = t->batches - 1;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi + 1) / 2;
        if (t->starts[mid] <= row) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static PyObject *Table_render(Table *t, PyObject *args) {
    Py_buffer idx = {0}, out;
    PyObject *indices;
    Py_ssize_t start, end;
    if (!PyArg_ParseTuple(args, "Onnw*", &indices, &start, &end, &out)) return NULL;
    PyObject *result = NULL;
    const int64_t *rows = NULL; /* NULL: the rows in their order */
    Py_ssize_t count = t->rows;
    if (indices != Py_None) {
        if (PyObject_GetBuffer(indices, &idx, PyBUF_SIMPLE) < 0) goto done;
        count = idx.len / 8;
        rows = idx.buf;
    }
    if (start < 0 || end > count || start > end) {
        PyErr_SetString(PyExc_ValueError, "positions out of range");
        goto done;
    }
    for (Py_ssize_t k = start; rows && k < end; k++) {
        if (rows[k] < 0 || rows[k] >= t->rows) {
            PyErr_SetString(PyExc_ValueError, "row index out of range");
            goto done;
        }
    }
    uint8_t skip_stack[64], null_stack[64];
    uint8_t *skip = skip_stack, *null = null_stack;
    if (t->nfields > 64) {
        PyErr_SetString(PyExc_ValueError, "too many fields");
        goto done;
    }
    char *base = out.buf, *dst = base, *stop = base + out.len;
    Py_ssize_t k = start, batch = 0, bad = -1;
    Py_ssize_t needed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (; k < end; k++) {
        int64_t row = rows ? rows[k] : k;
        batch = batch_of(t, row, batch);
        Py_ssize_t i = row - t->starts[batch];
        char *next = put_line_fast(t, batch, i, dst, stop);
        if (next == NO_ROOM) { /* near the end: the line's exact size decides */
            size_t len = line_len(t, batch, i, skip, null) + SLACK;
            if ((size_t)(stop - dst) < len) {
                if (dst == base) needed = (Py_ssize_t)len;
                break;
            }
            next = put_line(t, batch, i, dst, skip, null);
        }
        if (!next) {
            bad = row;
            break;
        }
        dst = next;
    }
    Py_END_ALLOW_THREADS
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "row %zd: occurred_at outside the years 1-9999", bad);
        goto done;
    }
    result = Py_BuildValue("nn", k, needed ? -needed : (Py_ssize_t)(dst - base));
done:
    if (idx.obj) PyBuffer_Release(&idx);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef TABLE_METHODS[] = {
    {"render", (PyCFunction)Table_render, METH_VARARGS,
     "render(indices, start, end, out) -> (next, written): lines of rows, in order."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "caracal_forensics.render._lines.Table",
    .tp_basicsize = sizeof(Table),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Arrow columns of events, to write their tail --json lines.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Table_init,
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_methods = TABLE_METHODS,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_lines", "tail --json lines from Arrow buffers.", -1, NULL,
};

PyMODINIT_FUNC PyInit__lines(void) {
    init_tables();
    if (PyType_Ready(&TableType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&TableType);
    if (PyModule_AddObject(m, "Table", (PyObject *)&TableType) < 0) {
        Py_DECREF(&TableType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

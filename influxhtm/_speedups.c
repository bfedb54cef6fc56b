/*
 * influxhtm._speedups: optional C encoders for InfluxDB line protocol.
 *
 * The pure-Python encoders (influxhtm/line_protocol.py, influxhtm/sensor.py) are
 * the reference; these functions only make the two hot paths cheaper:
 *
 *   encode_objects(plan, objs, start, stop, span=None) -> str | None
 *       lines of declared objects objs[start:stop], joined by "\n";
 *   encode_sensor(prefix, points, start, stop, check_only) -> str | True | None
 *       lines of plain `{"time": ..., "value": ...}` dicts (Sensor.write);
 *   time_span(body) -> (least, greatest) | None
 *       the timestamps a body of lines spans (line_protocol.body_time_span is the reference).
 *
 * Both return None for anything that is not the simple, valid case (another
 * class, a naive datetime, a value of an unexpected type, a missing key, ...):
 * the caller then runs the Python encoder, which produces the same bytes or the
 * same ValidationError as it always did. So this file never has to reproduce an
 * error message, and when in doubt it falls back.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#ifndef Py_T_OBJECT_EX /* before Python 3.12 */
#include <structmember.h>
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif

#define OK 0
#define FALLBACK 1 /* not the simple case: let Python do it */
#define FAILED (-1) /* a Python exception is set (out of memory) */
#define MAX_COLUMNS 128
#define MAX_US 9223372036854775LL /* |microseconds| whose nanoseconds stay in InfluxDB's range */

/* -- an output buffer of UTF-8 bytes ------------------------------------------ */
typedef struct {
    char *data;
    Py_ssize_t len, cap;
    int ascii; /* every byte so far < 0x80: the result is built without decoding */
} Buf;

static int buf_grow(Buf *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap) return OK;
    Py_ssize_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    char *data = PyMem_Realloc(b->data, cap);
    if (!data) { PyErr_NoMemory(); return FAILED; }
    b->data = data;
    b->cap = cap;
    return OK;
}

static int buf_put(Buf *b, const char *text, Py_ssize_t n) {
    if (buf_grow(b, n)) return FAILED;
    memcpy(b->data + b->len, text, n);
    b->len += n;
    return OK;
}

/* What gets a backslash: in tag values (and keys) comma, equals sign and space; in string fields
 * double quote and backslash. ASCII bytes never occur inside a multi-byte UTF-8 sequence, so
 * scanning bytes is safe. */
enum { PLAIN, TAG_ESCAPES, STRING_ESCAPES };

static inline int escaped(char c, int mode) {
    return mode == TAG_ESCAPES ? (c == ',' || c == '=' || c == ' ') : (c == '"' || c == '\\');
}

static int buf_put_escaped(Buf *b, const char *text, Py_ssize_t n, int mode) {
    if (buf_grow(b, 2 * n)) return FAILED;
    char *out = b->data + b->len;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (escaped(text[i], mode)) *out++ = '\\';
        *out++ = text[i];
    }
    b->len = out - b->data;
    return OK;
}

/* Append a str (optionally escaped). Non-str or unencodable text (a lone surrogate): FALLBACK. */
static int buf_put_str(Buf *b, PyObject *s, int mode) {
    if (!PyUnicode_CheckExact(s)) return FALLBACK;
    PyObject *tmp = NULL;
    const char *text;
    Py_ssize_t n;
    if (PyUnicode_IS_ASCII(s)) {
        text = (const char *)PyUnicode_DATA(s); /* compact ASCII: the characters are the bytes */
        n = PyUnicode_GET_LENGTH(s);
    } else {
        /* A temporary bytes object, so that no UTF-8 copy stays attached to the user's str. */
        tmp = PyUnicode_AsUTF8String(s);
        if (!tmp) { PyErr_Clear(); return FALLBACK; }
        text = PyBytes_AS_STRING(tmp);
        n = PyBytes_GET_SIZE(tmp);
        b->ascii = 0;
    }
    int rc = mode == PLAIN ? buf_put(b, text, n) : buf_put_escaped(b, text, n, mode);
    Py_XDECREF(tmp);
    return rc;
}

/* The decimal digits of u, written backwards from `end`, two at a time; returns where they start. */
static const char PAIRS[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                            "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                            "8081828384858687888990919293949596979899";

static char *write_digits(char *end, unsigned long long u) {
    while (u >= 100) {
        end -= 2;
        memcpy(end, PAIRS + 2 * (u % 100), 2);
        u /= 100;
    }
    if (u >= 10) {
        end -= 2;
        memcpy(end, PAIRS + 2 * u, 2);
    } else {
        *--end = (char)('0' + u);
    }
    return end;
}

/* repr(x) without dtoa, for 1e-4 <= |x| < 2**53 (where repr writes positional digits): repr is
 * the shortest decimal m / 10**k that reads back as x (the nearest such one), so search k = 0, 1, ...
 *
 * First in doubles: while p = |x| * 10**k < 2**50, m = round(p) is the only candidate, and
 * `m / 10**k == |x|` is exact (m and 10**k are exact doubles, IEEE division rounds correctly, as
 * reading the text would). Then, for 16-17 digits, exactly in 128-bit integers: |x| = M / 2**s and
 * m / 10**k reads back as |x| when it is within half a unit in the last place. A tie between two
 * candidates (repr then rounds half to even), no 128-bit integers, or x87 arithmetic: FALLBACK. */
static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21};
#define TWO_POW_50 1125899906842624.0
#define TWO_POW_53 9007199254740992.0
#define MAX_K 21

static int shortest_digits(double a, unsigned long long *m_out, int *k_out) {
#if FLT_EVAL_METHOD == 0 && defined(__SIZEOF_INT128__)
    if (!(a >= 1e-4 && a < TWO_POW_53)) return FALLBACK; /* also NaN */
    int k = 0;
    for (; k <= MAX_K; k++) {
        double p = a * POW10[k];
        if (p >= TWO_POW_50) break;
        double m = (double)(long long)(p + 0.5); /* floor: 0 <= p < 2**50, so p + 0.5 is exact */
        /* A candidate is within half an ulp of a, so m is within 2**-52 p of p (p - m is exact):
         * a cheap test that spares most divisions. */
        if (fabs(p - m) > p * 0x1p-51) continue;
        if (m / POW10[k] == a) { *m_out = (unsigned long long)m; *k_out = k; return OK; }
    }
    unsigned long long bits;
    memcpy(&bits, &a, sizeof bits);
    unsigned long long mant = (bits & ((1ULL << 52) - 1)) | (1ULL << 52); /* a >= 1e-4 is normal */
    int shift = 1075 - (int)(bits >> 52); /* a = mant / 2**shift, 0 <= shift <= 66 */
    if (shift < 0 || shift > 100) return FALLBACK;
    unsigned __int128 pow10 = 1;
    for (int i = 0; i < k; i++) pow10 *= 10;
    for (; k <= MAX_K; k++, pow10 *= 10) {
        unsigned __int128 num = (unsigned __int128)mant * pow10; /* < 2**53 * 10**21 < 2**124 */
        unsigned __int128 m = num >> shift, dist = 0;
        int below = 0; /* m / 10**k < a */
        if (shift) {
            unsigned __int128 rem = num & (((unsigned __int128)1 << shift) - 1), half = (unsigned __int128)1 << (shift - 1);
            if (rem == half) return FALLBACK; /* two nearest candidates */
            if (rem > half) m += 1, dist = ((unsigned __int128)1 << shift) - rem;
            else dist = rem, below = rem != 0;
        }
        /* |m / 10**k - a| = dist / (2**shift * 10**k); half an ulp is 1 / 2**(shift + 1), and a
         * quarter below a power of two. A candidate exactly on the limit: FALLBACK. */
        unsigned __int128 scaled = dist * (below && mant == (1ULL << 52) ? 4 : 2);
        if (scaled == pow10 && dist) return FALLBACK;
        if (scaled < pow10) {
            if (m >> 63) return FALLBACK;
            *m_out = (unsigned long long)m;
            *k_out = k;
            return OK;
        }
    }
#endif
    return FALLBACK;
}

/* The text of x = ±m / 10**k as repr writes it: "5.0", "12.34", "0.0012". */
static int buf_put_short_float(Buf *b, double x) {
    unsigned long long m;
    int k;
    if (shortest_digits(fabs(x), &m, &k)) return FALLBACK;
    char digits[24], text[64];
    int i = (int)(write_digits(digits + sizeof digits, m) - digits), n = 0;
    int len = (int)sizeof digits - i;
    if (x < 0) text[n++] = '-';
    if (k == 0) {
        memcpy(text + n, digits + i, len), n += len;
        text[n++] = '.', text[n++] = '0';
    } else if (len > k) {
        memcpy(text + n, digits + i, len - k), n += len - k;
        text[n++] = '.';
        memcpy(text + n, digits + i + len - k, k), n += k;
    } else {
        text[n++] = '0', text[n++] = '.';
        memset(text + n, '0', k - len), n += k - len;
        memcpy(text + n, digits + i, len), n += len;
    }
    return buf_put(b, text, n);
}

/* repr(float): the same function float.__repr__ calls, so the same text. */
static int buf_put_float(Buf *b, double x) {
    int rc = buf_put_short_float(b, x);
    if (rc != FALLBACK) return rc;
    char *text = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!text) return FAILED;
    rc = buf_put(b, text, (Py_ssize_t)strlen(text));
    PyMem_Free(text);
    return rc;
}

static int buf_put_int(Buf *b, long long v) {
    char digits[24];
    char *start = write_digits(digits + sizeof digits, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);
    if (v < 0) *--start = '-';
    return buf_put(b, start, digits + sizeof digits - start);
}

/* The Buf as a str; frees the buffer. */
static PyObject *buf_finish(Buf *b) {
    PyObject *result;
    if (b->ascii) {
        result = PyUnicode_New(b->len, 127);
        if (result && b->len) memcpy(PyUnicode_DATA(result), b->data, b->len);
    } else {
        result = PyUnicode_DecodeUTF8(b->data, b->len, "strict");
    }
    PyMem_Free(b->data);
    b->data = NULL;
    return result;
}

/* -- times ---------------------------------------------------------------------- */
/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's algorithm). */
static long long days_from_civil(long long y, int m, int d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Microseconds since the epoch of an aware datetime, exactly `(dt - EPOCH) // timedelta(microseconds=1)`.
 * Naive datetimes (local time, Python's rule), subclasses and anything odd: FALLBACK. */
static int datetime_us(PyObject *dt, long long *out) {
    if (!PyDateTime_CheckExact(dt)) return FALLBACK;
    PyObject *tz = PyDateTime_DATE_GET_TZINFO(dt);
    long long offset = 0;
    if (tz == Py_None) return FALLBACK;
    if (tz != PyDateTime_TimeZone_UTC) {
        PyObject *delta = PyObject_CallMethod(dt, "utcoffset", NULL); /* honours fold, like subtraction */
        if (!delta) { PyErr_Clear(); return FALLBACK; }
        if (!PyDelta_CheckExact(delta)) { Py_DECREF(delta); return FALLBACK; }
        offset = ((long long)PyDateTime_DELTA_GET_DAYS(delta) * 86400 + PyDateTime_DELTA_GET_SECONDS(delta))
                     * 1000000LL + PyDateTime_DELTA_GET_MICROSECONDS(delta);
        Py_DECREF(delta);
    }
    long long days = days_from_civil(PyDateTime_GET_YEAR(dt), PyDateTime_GET_MONTH(dt), PyDateTime_GET_DAY(dt));
    long long seconds = days * 86400 + PyDateTime_DATE_GET_HOUR(dt) * 3600
                        + PyDateTime_DATE_GET_MINUTE(dt) * 60 + PyDateTime_DATE_GET_SECOND(dt);
    *out = seconds * 1000000LL + PyDateTime_DATE_GET_MICROSECOND(dt) - offset; /* years 1-9999 fit */
    return OK;
}

/* -- declared objects --------------------------------------------------------------- */
/* Where instances of `cls` keep `attr`: the offset of its slot (attrs' slotted classes keep every
 * attribute in one), or -1 when it is not a plain slot, and PyObject_GetAttr must fetch it. */
static Py_ssize_t slot_offset(PyObject *cls, PyObject *attr) {
    if (!PyType_Check(cls) || ((PyTypeObject *)cls)->tp_getattro != PyObject_GenericGetAttr) return -1;
    PyObject *descr = PyObject_GetAttr(cls, attr);
    if (!descr) { PyErr_Clear(); return -1; }
    Py_ssize_t offset = -1;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)
        && PyType_IsSubtype((PyTypeObject *)cls, ((PyDescrObject *)descr)->d_type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == Py_T_OBJECT_EX) offset = member->offset;
    }
    Py_DECREF(descr);
    return offset;
}

/* obj.attr as a new reference; NULL when unset (or on an error, which the caller clears). */
static PyObject *get_attr(PyObject *obj, PyObject *attr, Py_ssize_t offset) {
    if (offset < 0) return PyObject_GetAttr(obj, attr);
    PyObject *value = *(PyObject **)((char *)obj + offset);
    Py_XINCREF(value);
    return value;
}

/* One tag or field of the plan, as `line_protocol._speedup_plan` builds it. */
typedef struct {
    PyObject *attr;      /* attribute name (interned str) */
    Py_ssize_t offset;   /* its slot, or -1 (see slot_offset) */
    const char *key;     /* UTF-8 of ",key=" (tags) or "key=" (fields), escaped */
    Py_ssize_t key_len;
    int key_ascii;
    int code;            /* 'f' float, 'i' int, 'b' bool, 's' str, 'e' enum (text looked up by identity) */
    PyObject *members;   /* for 'e': tuple of (member, formatted text) pairs */
    int optional;        /* None is left out */
} Column;

static int parse_columns(PyObject *cls, PyObject *specs, Column *cols, Py_ssize_t *count) {
    if (!PyTuple_Check(specs) || PyTuple_GET_SIZE(specs) > MAX_COLUMNS) return FALLBACK;
    *count = PyTuple_GET_SIZE(specs);
    for (Py_ssize_t i = 0; i < *count; i++) {
        PyObject *key, *members;
        Column *c = &cols[i];
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(specs, i), "UUCOp", &key, &c->attr, &c->code, &members,
                              &c->optional))
            return FAILED;
        c->key = PyUnicode_AsUTF8AndSize(key, &c->key_len); /* names are few: caching their UTF-8 is fine */
        if (!c->key) return FAILED;
        c->key_ascii = PyUnicode_IS_ASCII(key);
        c->members = members;
        c->offset = slot_offset(cls, c->attr);
        if (c->code == 'e' && !PyTuple_Check(members)) return FALLBACK;
    }
    return OK;
}

/* The text of an Enum member: found by identity (members are singletons), no Python-level __hash__. */
static PyObject *member_text(PyObject *members, PyObject *value) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(members); i++) {
        PyObject *pair = PyTuple_GET_ITEM(members, i);
        if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2 && PyTuple_GET_ITEM(pair, 0) == value)
            return PyTuple_GET_ITEM(pair, 1);
    }
    return NULL;
}

/* One column's value (already fetched) after its key text. */
static int put_value(Buf *b, Column *c, PyObject *v, int is_tag) {
    if (c->code == 'e') {
        PyObject *text = member_text(c->members, v);
        return text ? buf_put_str(b, text, PLAIN) : FALLBACK;
    }
    if (is_tag) return buf_put_str(b, v, TAG_ESCAPES);
    switch (c->code) {
    case 'f':
        return PyFloat_CheckExact(v) ? buf_put_float(b, PyFloat_AS_DOUBLE(v)) : FALLBACK;
    case 'i': {
        if (!PyLong_CheckExact(v)) return FALLBACK;
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (n == -1 && PyErr_Occurred())) { PyErr_Clear(); return FALLBACK; }
        return buf_put_int(b, n) || buf_put(b, "i", 1) ? FAILED : OK;
    }
    case 'b':
        if (v == Py_True) return buf_put(b, "true", 4);
        if (v == Py_False) return buf_put(b, "false", 5);
        return FALLBACK;
    case 's': {
        if (buf_put(b, "\"", 1)) return FAILED;
        int rc = buf_put_str(b, v, STRING_ESCAPES);
        return rc ? rc : buf_put(b, "\"", 1);
    }
    }
    return FALLBACK;
}

/* Tags (with their ",key=") or fields (a comma between them) of one object. */
static int put_columns(Buf *b, PyObject *obj, Column *cols, Py_ssize_t n, int is_tag, int *written) {
    for (Py_ssize_t i = 0; i < n; i++) {
        Column *c = &cols[i];
        PyObject *v = get_attr(obj, c->attr, c->offset);
        if (!v) { PyErr_Clear(); return FALLBACK; }
        int rc = OK;
        if (v == Py_None) {
            if (!c->optional) rc = FALLBACK;
        } else {
            if (!is_tag && *written && buf_put(b, ",", 1)) rc = FAILED;
            if (!rc) rc = buf_put(b, c->key, c->key_len);
            if (!rc) rc = put_value(b, c, v, is_tag);
            if (!c->key_ascii) b->ascii = 0;
            ++*written;
        }
        Py_DECREF(v);
        if (rc) return rc;
    }
    return OK;
}

/* What an encoder tells of the lines it made, through a list [least, greatest, extra] that
 * Python gives (`line_protocol.tally`: None, None, 0 at first), across calls: the least and
 * greatest timestamp (ns; the write pipeline reads them, `Batch.time_span`) and the newlines
 * beyond one between each two lines (inside string fields: then the body is not cut at each). */
typedef struct {
    long long lo, hi;
    int any;
} Span;

static inline void span_add(Span *span, long long ns) {
    if (!span->any || ns < span->lo) span->lo = ns;
    if (!span->any || ns > span->hi) span->hi = ns;
    span->any = 1;
}

/* Tell `out` (a list of three items, or None: nothing asked) the span and the newlines of the
 * `lines` lines in `b`. */
static int span_tell(Span *span, Buf *b, Py_ssize_t lines, PyObject *out) {
    if (out == Py_None || !span->any) return OK;
    if (!PyList_CheckExact(out) || PyList_GET_SIZE(out) != 3) {
        PyErr_SetString(PyExc_TypeError, "tally must be a list of three items");
        return FAILED;
    }
    Py_ssize_t newlines = 0;
    for (const char *at = b->data, *end = b->data + b->len;
         (at = memchr(at, '\n', (size_t)(end - at))) != NULL; at++)
        newlines++;
    Py_ssize_t was = PyLong_AsSsize_t(PyList_GET_ITEM(out, 2));
    if (was == -1 && PyErr_Occurred()) return FAILED;
    PyObject *extra = PyLong_FromSsize_t(was + newlines - (lines - 1));
    if (!extra) return FAILED;
    PyList_SetItem(out, 2, extra);
    PyObject *lo = PyList_GET_ITEM(out, 0), *hi = PyList_GET_ITEM(out, 1);
    long long was_lo = lo == Py_None ? span->lo : PyLong_AsLongLong(lo);
    long long was_hi = hi == Py_None ? span->hi : PyLong_AsLongLong(hi);
    if (PyErr_Occurred()) return FAILED;
    PyObject *new_lo = PyLong_FromLongLong(was_lo < span->lo ? was_lo : span->lo);
    PyObject *new_hi = PyLong_FromLongLong(was_hi > span->hi ? was_hi : span->hi);
    if (!new_lo || !new_hi) { Py_XDECREF(new_lo); Py_XDECREF(new_hi); return FAILED; }
    PyList_SetItem(out, 0, new_lo); /* steals the new references */
    PyList_SetItem(out, 1, new_hi);
    return OK;
}

/* The plan of a class, as `line_protocol._speedup_plan` builds it: (cls, prefix, time_attr, tags, fields). */
typedef struct {
    PyObject *cls, *prefix, *time_attr;
    Py_ssize_t time_offset, n_tags, n_fields;
    Column tags[MAX_COLUMNS], fields[MAX_COLUMNS];
} Plan;

static int parse_plan(PyObject *spec, Plan *plan) {
    PyObject *tags, *fields;
    if (!PyArg_ParseTuple(spec, "OUUOO", &plan->cls, &plan->prefix, &plan->time_attr, &tags, &fields))
        return FAILED;
    int rc = parse_columns(plan->cls, tags, plan->tags, &plan->n_tags);
    if (!rc) rc = parse_columns(plan->cls, fields, plan->fields, &plan->n_fields);
    plan->time_offset = slot_offset(plan->cls, plan->time_attr);
    return rc;
}

/* The line of one object (the caller holds a reference: fetching an attribute may run Python code). */
static int put_object(Buf *b, Plan *plan, PyObject *obj, Span *span) {
    if ((PyObject *)Py_TYPE(obj) != plan->cls) return FALLBACK; /* another class: Python delegates */
    int rc, written = 0;
    if ((rc = buf_put_str(b, plan->prefix, PLAIN))) return rc;
    if ((rc = put_columns(b, obj, plan->tags, plan->n_tags, 1, &written))) return rc;
    if ((rc = buf_put(b, " ", 1))) return rc;
    written = 0;
    if ((rc = put_columns(b, obj, plan->fields, plan->n_fields, 0, &written))) return rc;
    if (!written) return FALLBACK; /* all None: refused at construction; Python decides */
    PyObject *when = get_attr(obj, plan->time_attr, plan->time_offset);
    if (!when) { PyErr_Clear(); return FALLBACK; }
    long long us;
    rc = datetime_us(when, &us);
    Py_DECREF(when);
    if (rc) return rc;
    if (us < -MAX_US || us > MAX_US) return FALLBACK;
    span_add(span, us * 1000);
    return buf_put(b, " ", 1) || buf_put_int(b, us * 1000) ? FAILED : OK;
}

/* encode_objects(plan, objs, start, stop, span=None) -> str | None */
static PyObject *encode_objects(PyObject *self, PyObject *args) {
    PyObject *spec, *objs, *out = Py_None;
    Py_ssize_t start, stop;
    Plan plan;
    Span span = {0, 0, 0};
    if (!PyArg_ParseTuple(args, "O!Onn|O", &PyTuple_Type, &spec, &objs, &start, &stop, &out)) return NULL;
    int rc = parse_plan(spec, &plan);
    if (rc == FAILED) return NULL;
    if (rc == FALLBACK || !PyList_CheckExact(objs)) Py_RETURN_NONE;
    Buf b = {NULL, 0, 0, 1};
    Py_ssize_t first = start < 0 ? 0 : start;
    if (stop > PyList_GET_SIZE(objs)) stop = PyList_GET_SIZE(objs);
    for (Py_ssize_t i = first; i < stop && !rc; i++) {
        if (i >= PyList_GET_SIZE(objs)) { rc = FALLBACK; break; } /* Python code shrank the list */
        PyObject *obj = PyList_GET_ITEM(objs, i);
        Py_INCREF(obj);
        rc = i > first && buf_put(&b, "\n", 1) ? FAILED : put_object(&b, &plan, obj, &span);
        Py_DECREF(obj);
    }
    if (!rc) rc = span_tell(&span, &b, stop - first, out);
    if (rc) {
        PyMem_Free(b.data);
        if (rc == FAILED) return NULL;
        Py_RETURN_NONE;
    }
    return buf_finish(&b);
}

/* -- plain sensor dicts ------------------------------------------------------------- */
static PyObject *TIME_KEY, *VALUE_KEY;

/* One `{time_key: ..., value_key: ...}` dict (default "time" and "value"): exactly those two keys, a
 * finite float or int (not bool) value, a time that is an int or an aware datetime within InfluxDB's
 * range. Else FALLBACK. */
static int sensor_point(PyObject *point, PyObject *time_key, PyObject *value_key, double *value,
                        long long *ns) {
    if (!PyDict_CheckExact(point) || PyDict_GET_SIZE(point) != 2) return FALLBACK;
    /* Owned references: a key's __eq__ or a tzinfo may run Python code that changes the dict. */
    PyObject *t = PyDict_GetItemWithError(point, time_key);
    Py_XINCREF(t);
    PyObject *v = t ? PyDict_GetItemWithError(point, value_key) : NULL;
    Py_XINCREF(v);
    int rc = v ? OK : FALLBACK; /* missing (or a key whose __eq__ failed) */
    PyErr_Clear();
    if (!rc && PyFloat_CheckExact(v)) {
        *value = PyFloat_AS_DOUBLE(v);
    } else if (!rc && PyLong_CheckExact(v)) { /* bool is a subclass, so it never gets here */
        *value = PyLong_AsDouble(v);          /* what float(v) does */
        if (*value == -1.0 && PyErr_Occurred()) { PyErr_Clear(); rc = FALLBACK; }
    } else {
        rc = FALLBACK;
    }
    if (!rc && !isfinite(*value)) rc = FALLBACK;
    if (!rc && PyLong_CheckExact(t)) {
        int overflow;
        *ns = PyLong_AsLongLongAndOverflow(t, &overflow);
        if (overflow || (*ns == -1 && PyErr_Occurred())) { PyErr_Clear(); rc = FALLBACK; }
        /* InfluxDB's range is [INT64_MIN + 2, INT64_MAX - 1] */
        else if (*ns < -9223372036854775806LL || *ns > 9223372036854775806LL) rc = FALLBACK;
    } else if (!rc) {
        long long us;
        rc = datetime_us(t, &us);
        if (!rc && (us < -MAX_US || us > MAX_US)) rc = FALLBACK;
        if (!rc) *ns = us * 1000;
    }
    Py_XDECREF(t);
    Py_XDECREF(v);
    return rc;
}

/* encode_sensor(prefix, points, start, stop, check_only, time_key="time", value_key="value", span=None): prefix is
 * "<measurement>,<fixed tags> <value key>=" (a declaration's pairs plan, see line_protocol.py).
 * With check_only, nothing is formatted: True when every point is the simple case, else None. */
static PyObject *encode_sensor(PyObject *self, PyObject *args) {
    PyObject *prefix, *points, *time_key = TIME_KEY, *value_key = VALUE_KEY, *out = Py_None;
    Py_ssize_t start, stop;
    int check_only;
    Span span = {0, 0, 0};
    if (!PyArg_ParseTuple(args, "UO!nnp|UUO", &prefix, &PyList_Type, &points, &start, &stop, &check_only,
                          &time_key, &value_key, &out))
        return NULL;
    if (start < 0) start = 0;
    if (stop > PyList_GET_SIZE(points)) stop = PyList_GET_SIZE(points);
    Buf b = {NULL, 0, 0, 1};
    int rc = OK;
    for (Py_ssize_t i = start; i < stop && !rc; i++) {
        if (i >= PyList_GET_SIZE(points)) { rc = FALLBACK; break; } /* Python code shrank the list */
        double value = 0;
        long long ns = 0;
        PyObject *point = PyList_GET_ITEM(points, i);
        Py_INCREF(point);
        rc = sensor_point(point, time_key, value_key, &value, &ns);
        Py_DECREF(point);
        if (rc || check_only) continue;
        span_add(&span, ns);
        if ((i > start && buf_put(&b, "\n", 1)) || (rc = buf_put_str(&b, prefix, PLAIN)) ||
            buf_put_float(&b, value) || buf_put(&b, " ", 1) || buf_put_int(&b, ns))
            rc = rc ? rc : FAILED;
    }
    if (!rc && !check_only) rc = span_tell(&span, &b, stop - start, out);
    if (rc || check_only) {
        PyMem_Free(b.data);
        if (rc == FAILED) return NULL;
        if (rc) Py_RETURN_NONE;
        Py_RETURN_TRUE;
    }
    return buf_finish(&b);
}

/* -- slots of a new instance ------------------------------------------------------------ */
/* set_slots(obj, cls, offsets, *values): store each value in the slot at that offset (as the slots'
 * own setters do), for a declared class's generated __init__; offsets come from slot_offsets(cls). */
static PyObject *set_slots(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 3 || !PyType_Check(args[1]) || !PyTuple_CheckExact(args[2])
        || PyTuple_GET_SIZE(args[2]) != nargs - 3) {
        PyErr_SetString(PyExc_TypeError, "set_slots(obj, cls, offsets, *values): one offset per value");
        return NULL;
    }
    PyObject *obj = args[0];
    if (!PyObject_TypeCheck(obj, (PyTypeObject *)args[1])) { /* another layout: offsets would be wrong */
        PyErr_Format(PyExc_TypeError, "set_slots: %R is not a %R", obj, args[1]);
        return NULL;
    }
    for (Py_ssize_t i = 3; i < nargs; i++) {
        Py_ssize_t offset = PyLong_AsSsize_t(PyTuple_GET_ITEM(args[2], i - 3));
        if (offset == -1 && PyErr_Occurred()) return NULL;
        PyObject **slot = (PyObject **)((char *)obj + offset);
        PyObject *old = *slot;
        Py_INCREF(args[i]);
        *slot = args[i];
        Py_XDECREF(old);
    }
    Py_RETURN_NONE;
}

/* slot_offsets(cls, names) -> tuple of offsets, or None when one is not a plain object slot of cls. */
static PyObject *slot_offsets(PyObject *self, PyObject *args) {
    PyObject *cls, *names;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &cls, &PyTuple_Type, &names)) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    PyObject *out = PyTuple_New(n);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t offset = slot_offset(cls, PyTuple_GET_ITEM(names, i));
        if (offset < 0) { Py_DECREF(out); Py_RETURN_NONE; }
        PyObject *number = PyLong_FromSsize_t(offset);
        if (!number) { Py_DECREF(out); return NULL; }
        PyTuple_SET_ITEM(out, i, number);
    }
    return out;
}

/* -- the time span of a body ------------------------------------------------------------ */
/* The timestamp ending s[a:b] (" -?[0-9]{1,19}" at its very end, within a signed 64-bit integer),
 * or 0 when the line ends otherwise (a line without one ends with a field value, after "="). */
static int line_time(const char *s, Py_ssize_t a, Py_ssize_t b, long long *out) {
    Py_ssize_t i = b;
    while (i > a && s[i - 1] >= '0' && s[i - 1] <= '9') i--;
    Py_ssize_t digits = b - i;
    if (digits < 1 || digits > 19) return 0;
    int negative = i > a && s[i - 1] == '-';
    if (negative) i--;
    if (i <= a || s[i - 1] != ' ') return 0;
    unsigned long long u = 0;
    for (Py_ssize_t k = b - digits; k < b; k++) u = u * 10 + (unsigned long long)(s[k] - '0');
    if (u > (unsigned long long)LLONG_MAX) return 0;
    *out = negative ? -(long long)u : (long long)u;
    return 1;
}

/* time_span(body: bytes) -> (least, greatest) | None: None when a line has no timestamp. */
static PyObject *time_span(PyObject *self, PyObject *arg) {
    char *s;
    Py_ssize_t n;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "time_span(body): body must be bytes");
        return NULL;
    }
    if (PyBytes_AsStringAndSize(arg, &s, &n) < 0) return NULL;
    long long lo = LLONG_MAX, hi = LLONG_MIN, t = 0;
    int found = 1;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t a = 0;
    while (found) {
        const char *newline = memchr(s + a, '\n', (size_t)(n - a));
        Py_ssize_t b = newline ? newline - s : n;
        found = line_time(s, a, b, &t);
        if (found) {
            if (t < lo) lo = t;
            if (t > hi) hi = t;
        }
        if (!newline) break;
        a = b + 1;
    }
    Py_END_ALLOW_THREADS
    if (!found) Py_RETURN_NONE;
    return Py_BuildValue("(LL)", lo, hi);
}

/* -- the module ------------------------------------------------------------------------ */
static PyMethodDef methods[] = {
    {"encode_objects", encode_objects, METH_VARARGS,
     "encode_objects(plan, objs, start, stop, span=None) -> str | None: lines of declared objects, or None "
     "(use Python); a list [least, greatest, extra] given as span takes in the lines' times and newlines."},
    {"encode_sensor", encode_sensor, METH_VARARGS,
     "encode_sensor(prefix, points, start, stop, check_only, time_key='time', value_key='value', span=None) -> "
     "str | True | None: lines of plain {time, value} dicts, or None (use Python)."},
    {"time_span", time_span, METH_O,
     "time_span(body) -> (least, greatest) | None: the timestamps a body of lines spans."},
    {"set_slots", (PyCFunction)(void (*)(void))set_slots, METH_FASTCALL,
     "set_slots(obj, cls, offsets, *values): store the values in the slots of an instance of cls."},
    {"slot_offsets", slot_offsets, METH_VARARGS,
     "slot_offsets(cls, names) -> tuple | None: the offsets of these plain object slots of cls."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "influxhtm._speedups",
                                    "Optional C line-protocol encoders (see line_protocol.py).", -1, methods};

PyMODINIT_FUNC PyInit__speedups(void) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI) return NULL;
    TIME_KEY = PyUnicode_InternFromString("time");
    VALUE_KEY = PyUnicode_InternFromString("value");
    if (!TIME_KEY || !VALUE_KEY) return NULL;
    return PyModule_Create(&module);
}

/*
 * tornpool.codec._speedups -- C twin of tornpool/codec/_pure.py.
 *
 * Decodes MySQL text-protocol row packets straight out of a receive buffer
 * and returns the same values, types and exceptions as PyMySQL's
 * MySQLResult._read_row_from_packet() with the same (encoding, converter)
 * list.  Converters are recognised by identity (int, float, Decimal and
 * PyMySQL's convert_* functions); for those a strict parser handles the
 * canonical server formats directly and anything it is not certain about is
 * handed to the real Python converter with exactly the argument PyMySQL
 * would pass.  Every other converter is simply called.
 *
 * Rules: no I/O, no global mutable state besides the datetime C-API capsule
 * and the objects cached in the module state at import, no pointer into the
 * caller's buffer survives a call (the buffer export is held for the length
 * of one call and released on every path).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <datetime.h>
#include <string.h>
#include <float.h>
#include <limits.h>
#include <stdint.h>

/* The one-operation float path needs IEEE double arithmetic without excess
 * precision (true for SSE2, aarch64, ...); elsewhere only strtod is used. */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define TP_EXACT_FLOAT_OPS 1
#else
#define TP_EXACT_FLOAT_OPS 0
#endif

/* Eisel-Lemire needs a 64x64->128-bit multiply and IEEE binary64 doubles
 * (also checked at import, see float_layout_ok); elsewhere the slower
 * correctly rounded paths are used. */
#if defined(__SIZEOF_INT128__) && (defined(__GNUC__) || defined(__clang__)) \
    && FLT_RADIX == 2 && DBL_MANT_DIG == 53 && DBL_MAX_EXP == 1024
#define TP_EISEL_LEMIRE 1
#else
#define TP_EISEL_LEMIRE 0
#endif

/* Powers of ten in the Eisel-Lemire table: 10**P10_MIN .. 10**P10_MAX. */
#define P10_MIN (-348)
#define P10_MAX 347
#define P10_COUNT (P10_MAX - P10_MIN + 1)

/* Small parsers used from more than one place, forced inline in the hot
 * loop. */
#if defined(__GNUC__) || defined(__clang__)
#define TP_INLINE static inline __attribute__((always_inline))
#else
#define TP_INLINE static inline
#endif

/* ------------------------------------------------------------------ kinds */

enum enc_kind { ENC_BYTES = 0, ENC_ASCII, ENC_UTF8, ENC_LATIN1, ENC_CP1252, ENC_OTHER };
static const char *const enc_names[] = {"bytes", "ascii", "utf8", "latin1", "cp1252", "other"};

enum conv_kind {
    CONV_NONE = 0, CONV_INT, CONV_FLOAT, CONV_DECIMAL, CONV_DATETIME,
    CONV_DATE, CONV_TIMEDELTA, CONV_TIME, CONV_CALL
};
static const char *const conv_names[] = {
    "none", "int", "float", "decimal", "datetime", "date", "timedelta", "time", "call"
};

/* Encoding spellings handled without going through the codec registry.
 * Each must be a name that bytes.decode() maps to the same built-in codec. */
static const struct { const char *name; int kind; } enc_table[] = {
    {"ascii", ENC_ASCII},
    {"utf8", ENC_UTF8}, {"utf-8", ENC_UTF8}, {"utf_8", ENC_UTF8},
    {"latin1", ENC_LATIN1}, {"latin-1", ENC_LATIN1}, {"latin_1", ENC_LATIN1},
    {"cp1252", ENC_CP1252},
    {NULL, 0}
};

static const char ARGS_MSG[] = "decode_rows() needs 0 <= pos <= end <= len(buf)";
static const char SEQ_MSG[] = "decode_rows() needs 0 <= seq <= 255";
static const char PLAN_MSG[] =
    "decode_rows() needs a Plan made by make_plan() of the same implementation";
static const char BUF_MSG[] = "decode_rows() argument 'buf' must be a bytes-like object, not '%.200s'";
static const char CONTIG_MSG[] = "decode_rows() needs a C-contiguous buffer";
static const char PAIR_MSG[] =
    "make_plan() needs a sequence of (encoding, converter) pairs; item %zd is not one";
static const char SEQ_TYPE_MSG[] = "make_plan() needs a list or tuple of (encoding, converter) pairs";

/* ------------------------------------------------------------ module state */

typedef struct {
    PyTypeObject *plan_type;
    PyObject *through;
    PyObject *decimal;
    PyObject *convert_datetime;
    PyObject *convert_date;
    PyObject *convert_timedelta;
    PyObject *convert_time;
    PyObject *str_decode; /* "decode" */
    newfunc decimal_new;  /* Decimal's tp_new when calling it is all Decimal(x) does */
    int el_ok;            /* pow10 filled and doubles are IEEE binary64 */
    /* floor(10**e * 2**(127 - floor(log2(10**e)))), i.e. the first 128
     * significant bits of 10**e rounded down, as (hi, lo) words, for
     * e = P10_MIN .. P10_MAX.  Filled once by module_exec. */
    uint64_t pow10[P10_COUNT][2];
} modstate;

static inline modstate *
get_state(PyObject *module)
{
    return (modstate *)PyModule_GetState(module);
}

/* ------------------------------------------------------------------- Plan */

/* What decode_rows does with a column, from its two kinds. */
enum op_kind {
    OP_TEXT = 0,  /* CONV_NONE: decode_text */
    OP_UTF8,      /* CONV_NONE, ENC_UTF8: decode_utf8 */
    OP_INT, OP_FLOAT, OP_DATETIME, OP_DATE, OP_TIMEDELTA, OP_TIME,
                  /* fast path, else the converter (not with ENC_OTHER) */
    OP_CALL       /* decode_text, then the converter */
};

typedef struct {
    unsigned char enc;
    unsigned char conv;
    unsigned char op;
    PyObject *encoding;  /* strong ref, may be Py_None */
    PyObject *converter; /* strong ref, may be Py_None */
} column;

typedef struct {
    PyObject_VAR_HEAD
    PyObject *kinds; /* tuple of str, for introspection and tests */
    column cols[1];
} PlanObject;

static int
plan_traverse(PlanObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->kinds);
    for (Py_ssize_t i = 0; i < Py_SIZE(self); i++) {
        Py_VISIT(self->cols[i].encoding);
        Py_VISIT(self->cols[i].converter);
    }
    return 0;
}

static int
plan_clear(PlanObject *self)
{
    Py_CLEAR(self->kinds);
    for (Py_ssize_t i = 0; i < Py_SIZE(self); i++) {
        Py_CLEAR(self->cols[i].encoding);
        Py_CLEAR(self->cols[i].converter);
    }
    return 0;
}

static void
plan_dealloc(PlanObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    plan_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *
plan_get_ncols(PlanObject *self, void *closure)
{
    return PyLong_FromSsize_t(Py_SIZE(self));
}

static PyObject *
plan_repr(PlanObject *self)
{
    return PyUnicode_FromFormat("<tornpool.codec Plan ncols=%zd impl=c>", Py_SIZE(self));
}

static PyMemberDef plan_members[] = {
    {"kinds", T_OBJECT_EX, offsetof(PlanObject, kinds), READONLY,
     "Per column '<encoding kind>:<converter kind>' strings."},
    {NULL}
};

static PyGetSetDef plan_getset[] = {
    {"ncols", (getter)plan_get_ncols, NULL, "Number of columns.", NULL},
    {NULL}
};

static PyType_Slot plan_slots[] = {
    {Py_tp_doc, "Per-result-set decoding plan; build it with make_plan()."},
    {Py_tp_dealloc, plan_dealloc},
    {Py_tp_traverse, plan_traverse},
    {Py_tp_clear, plan_clear},
    {Py_tp_repr, plan_repr},
    {Py_tp_members, plan_members},
    {Py_tp_getset, plan_getset},
    {0, NULL}
};

static PyType_Spec plan_spec = {
    .name = "tornpool.codec._speedups.Plan",
    .basicsize = offsetof(PlanObject, cols),
    .itemsize = sizeof(column),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = plan_slots,
};

static int
classify_encoding(PyObject *enc)
{
    if (enc == Py_None)
        return ENC_BYTES;
    if (!PyUnicode_CheckExact(enc))
        return ENC_OTHER;
    for (int i = 0; enc_table[i].name != NULL; i++) {
        if (PyUnicode_CompareWithASCIIString(enc, enc_table[i].name) == 0)
            return enc_table[i].kind;
    }
    return ENC_OTHER;
}

static int
classify_converter(modstate *st, PyObject *conv)
{
    if (conv == Py_None || conv == st->through)
        return CONV_NONE;
    if (conv == (PyObject *)&PyLong_Type)
        return CONV_INT;
    if (conv == (PyObject *)&PyFloat_Type)
        return CONV_FLOAT;
    if (conv == st->decimal)
        return CONV_DECIMAL;
    if (conv == st->convert_datetime)
        return CONV_DATETIME;
    if (conv == st->convert_date)
        return CONV_DATE;
    if (conv == st->convert_timedelta)
        return CONV_TIMEDELTA;
    if (conv == st->convert_time)
        return CONV_TIME;
    return CONV_CALL;
}

static int
column_op(int enc, int conv)
{
    if (conv == CONV_NONE)
        return enc == ENC_UTF8 ? OP_UTF8 : OP_TEXT;
    /* Fast paths only read ASCII digits/punctuation, which every encoding
     * kind except ENC_OTHER decodes to the same characters without error. */
    if (enc == ENC_OTHER)
        return OP_CALL;
    switch (conv) {
    case CONV_INT: return OP_INT;
    case CONV_FLOAT: return OP_FLOAT;
    case CONV_DATETIME: return OP_DATETIME;
    case CONV_DATE: return OP_DATE;
    case CONV_TIMEDELTA: return OP_TIMEDELTA;
    case CONV_TIME: return OP_TIME;
    default: return OP_CALL;
    }
}

static PyObject *
make_plan(PyObject *module, PyObject *converters)
{
    modstate *st = get_state(module);
    if (!PyList_Check(converters) && !PyTuple_Check(converters)) {
        PyErr_SetString(PyExc_TypeError, SEQ_TYPE_MSG);
        return NULL;
    }
    /* Snapshot first: nothing below runs Python code, but a list could be
     * shared with another thread between the size read and the item reads. */
    PyObject *items = PySequence_Tuple(converters);
    if (items == NULL)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    PlanObject *plan = (PlanObject *)PyType_GenericAlloc(st->plan_type, n);
    if (plan == NULL) {
        Py_DECREF(items);
        return NULL;
    }
    PyObject *kinds = PyTuple_New(n);
    if (kinds == NULL)
        goto fail;
    plan->kinds = kinds;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(items, i);
        PyObject *enc, *conv;
        if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2) {
            enc = PyTuple_GET_ITEM(item, 0);
            conv = PyTuple_GET_ITEM(item, 1);
        }
        else if (PyList_CheckExact(item) && PyList_GET_SIZE(item) == 2) {
            enc = PyList_GET_ITEM(item, 0);
            conv = PyList_GET_ITEM(item, 1);
        }
        else {
            PyErr_Format(PyExc_TypeError, PAIR_MSG, i);
            goto fail;
        }
        column *c = &plan->cols[i];
        c->enc = (unsigned char)classify_encoding(enc);
        c->conv = (unsigned char)classify_converter(st, conv);
        c->op = (unsigned char)column_op(c->enc, c->conv);
        Py_INCREF(enc);
        c->encoding = enc;
        Py_INCREF(conv);
        c->converter = conv;
        PyObject *name = PyUnicode_FromFormat("%s:%s", enc_names[c->enc], conv_names[c->conv]);
        if (name == NULL)
            goto fail;
        PyTuple_SET_ITEM(kinds, i, name);
    }
    Py_DECREF(items);
    return (PyObject *)plan;
fail:
    Py_DECREF(items);
    Py_DECREF(plan);
    return NULL;
}

/* ------------------------------------------------------- strict parsers
 * Each returns 1 when the input is in the canonical form it handles and the
 * resulting object can be built without error, 0 otherwise (never sets an
 * exception).  Returning 0 sends the value down the exact Python path. */

static inline int
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline int
two_digits(const unsigned char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* Runs of ASCII digits, eight at a time where eight bytes of the value
 * are left (never past the value: it may end the buffer).  The word
 * tricks assume the first byte in memory is the least significant one. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) \
    && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define TP_SWAR_DIGITS 1
#else
#define TP_SWAR_DIGITS 0
#endif

#if TP_SWAR_DIGITS
static inline uint64_t
load8(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

/* All eight bytes in '0'..'9': each byte's high nibble is 3, and adding 6
 * does not carry out of its low nibble. */
static inline int
all8_digits(uint64_t w)
{
    return ((w & 0xF0F0F0F0F0F0F0F0ULL)
            | (((w + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4))
           == 0x3333333333333333ULL;
}

/* The value of eight digit bytes (checked by all8_digits): combine
 * neighbouring digits, then pairs, then quads. */
static inline uint64_t
value8(uint64_t w)
{
    w -= 0x3030303030303030ULL;
    w = (w * 10 + (w >> 8)) & 0x00FF00FF00FF00FFULL;
    w = (w * 100 + (w >> 16)) & 0x0000FFFF0000FFFFULL;
    return (w * 10000 + (w >> 32)) & 0xFFFFFFFFULL;
}
#endif

/* Reads the run of digits at s[*i..n): advances *i past it, adds its
 * length to *nd and appends its digits to *v as long as *nd stays <= 19
 * (so *v never overflows; *nd > 19 afterwards means *v is incomplete).
 * Callers pass values shorter than 64 bytes. */
TP_INLINE void
read_run(const unsigned char *s, Py_ssize_t n, Py_ssize_t *pi, uint64_t *pv, int *pnd)
{
    Py_ssize_t i = *pi;
    uint64_t v = *pv;
    int nd = *pnd;
#if TP_SWAR_DIGITS
    while (n - i >= 8 && nd <= 11) {
        uint64_t w = load8(s + i);
        if (!all8_digits(w))
            break;
        v = v * 100000000 + value8(w);
        nd += 8;
        i += 8;
    }
#endif
    for (; i < n; i++) {
        unsigned int d = (unsigned int)s[i] - '0';
        if (d > 9)
            break;
        if (nd < 19)
            v = v * 10 + d;
        nd++;
    }
    *pi = i;
    *pv = v;
    *pnd = nd;
}

/* -?[0-9]{1,20} with a value that fits a C long long or, if positive,
 * unsigned long long  ->  int(text) (leading zeros and "-0" included). */
static PyObject *
fast_int(const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    int neg = 0, nd = 0;
    uint64_t v = 0;
    if (n > 0 && s[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (n - i < 1 || n - i > 20)
        return NULL;
    read_run(s, n, &i, &v, &nd);
    if (i != n)
        return NULL;
    if (nd == 20) {
        /* v holds the first 19 digits (< 10**19) */
        unsigned int d = s[n - 1] - '0';
        if (v > UINT64_MAX / 10 || (v == UINT64_MAX / 10 && d > UINT64_MAX % 10))
            return NULL;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)LLONG_MAX + 1)
            return NULL;
        return PyLong_FromLongLong(v == 0 ? 0 : -(long long)(v - 1) - 1);
    }
    if (v <= (uint64_t)LLONG_MAX)
        return PyLong_FromLongLong((long long)v);
    return PyLong_FromUnsignedLongLong(v);
}

/* -?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?  ->  float(text)
 *
 * float() on such a string ends in PyOS_string_to_double on the same
 * characters (there is no whitespace or underscore to strip), so that call
 * gives a bit-for-bit equal result, and is the fallback here.  Before it,
 * two exact shortcuts for the decimal value mant * 10**exp10 when the
 * digits, leading zeros included, number at most 19 (mant fits in 64 bits
 * exactly):
 *
 * 1. Clinger's fast path: mant <= 2**53 and |exp10| <= 22 are both exact
 *    doubles, so one IEEE multiplication or division rounds correctly
 *    (needs double arithmetic without excess precision).
 * 2. The Eisel-Lemire algorithm (as in Go's strconv, Rust's core::num and
 *    fast_float; https://nigeltao.github.io/blog/2020/eisel-lemire.html):
 *    multiply the normalised mantissa by a 128-bit truncation of 10**exp10
 *    and keep the top 54 bits.  When the truncation error could change the
 *    rounding (a run of one bits, an exact halfway case) or the result is
 *    subnormal/out of range it gives up, and strtod decides.
 *
 * Both produce the correctly rounded double, which is what CPython's
 * strtod produces, so the result never depends on which path was taken. */
static const double exact_pow10[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

#if TP_EISEL_LEMIRE
/* floor(x / 2**16): GCC and clang (the only compilers this path is built
 * with) define >> on a negative signed value as an arithmetic shift. */
static inline int64_t
floor_div65536(int64_t x)
{
    return x >> 16;
}

/* mant * 10**exp10 (mant != 0, P10_MIN <= exp10 <= P10_MAX) correctly
 * rounded to a double in *out; returns 0 if undecided here. */
static int
eisel_lemire(const modstate *st, uint64_t mant, int exp10, int neg, double *out)
{
    const uint64_t p_hi = st->pow10[exp10 - P10_MIN][0];
    const uint64_t p_lo = st->pow10[exp10 - P10_MIN][1];
    int clz = __builtin_clzll(mant);
    mant <<= clz;
    /* biased binary exponent of the result, before the final adjustments;
     * 217706 / 2**16 ~ log2(10).  Unsigned: wraps below zero on purpose. */
    uint64_t e2 = (uint64_t)(floor_div65536((int64_t)217706 * exp10) + 64 + 1023)
                  - (uint64_t)clz;
    unsigned __int128 x = (unsigned __int128)mant * p_hi;
    uint64_t x_hi = (uint64_t)(x >> 64), x_lo = (uint64_t)x;
    /* The product of mant with the true 10**exp10 lies in
     * [x, x + mant) units of the low word; if adding mant could carry into
     * the 9 bits below the 54 we keep, look at the next 64 table bits. */
    if ((x_hi & 0x1FF) == 0x1FF && x_lo + mant < mant) {
        unsigned __int128 y = (unsigned __int128)mant * p_lo;
        uint64_t y_hi = (uint64_t)(y >> 64), y_lo = (uint64_t)y;
        uint64_t m_hi = x_hi, m_lo = x_lo + y_hi;
        if (m_lo < x_lo)
            m_hi++;
        if ((m_hi & 0x1FF) == 0x1FF && m_lo + 1 == 0 && y_lo + mant < mant)
            return 0;
        x_hi = m_hi;
        x_lo = m_lo;
    }
    /* keep 54 bits: 53 plus one for rounding */
    uint64_t msb = x_hi >> 63;
    uint64_t m = x_hi >> (msb + 9);
    e2 -= 1 ^ msb;
    /* exactly halfway between two doubles: ties-to-even needs the exact
     * value, which the truncated product may not be */
    if (x_lo == 0 && (x_hi & 0x1FF) == 0 && (m & 3) == 1)
        return 0;
    m += m & 1;
    m >>= 1;
    if (m >> 53) {
        m >>= 1;
        e2 += 1;
    }
    if (e2 - 1 >= 0x7FF - 1)
        return 0; /* subnormal, zero, infinite: leave it to strtod */
    uint64_t bits = (e2 << 52) | (m & 0x000FFFFFFFFFFFFFULL);
    if (neg)
        bits |= 0x8000000000000000ULL;
    memcpy(out, &bits, sizeof bits);
    return 1;
}

/* Fills st->pow10 with exact big-number arithmetic: 10**e by repeated
 * multiplication for e >= 0, floor(2**1344 / 10**-e) by repeated division
 * (floor of floors is the floor) for e < 0, keeping the top 128 bits. */
#define P10_LIMBS 43 /* 32-bit limbs: 2**1344 needs 43, 10**347 needs 37 */

static void
top128(const uint32_t *x, int nlimbs, uint64_t *hi, uint64_t *lo)
{
    int top = nlimbs * 32 - 1;
    while (top > 0 && !((x[top / 32] >> (top % 32)) & 1))
        top--;
    uint64_t h = 0, l = 0;
    for (int k = 0; k < 128; k++) {
        int b = top - k;
        uint64_t bit = b >= 0 ? (x[b / 32] >> (b % 32)) & 1 : 0;
        if (k < 64)
            h = (h << 1) | bit;
        else
            l = (l << 1) | bit;
    }
    *hi = h;
    *lo = l;
}

static int
float_layout_ok(void)
{
    double d = 1.5;
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return sizeof(double) == 8 && bits == 0x3FF8000000000000ULL;
}

static void
fill_pow10(modstate *st)
{
    uint32_t x[P10_LIMBS];
    st->el_ok = 0;
    if (!float_layout_ok())
        return;
    memset(x, 0, sizeof x);
    x[0] = 1;
    for (int e = 0; e <= P10_MAX; e++) {
        top128(x, P10_LIMBS, &st->pow10[e - P10_MIN][0], &st->pow10[e - P10_MIN][1]);
        uint64_t carry = 0;
        for (int i = 0; i < P10_LIMBS; i++) {
            uint64_t t = (uint64_t)x[i] * 10 + carry;
            x[i] = (uint32_t)t;
            carry = t >> 32;
        }
    }
    memset(x, 0, sizeof x);
    x[P10_LIMBS - 1] = 1; /* 2**1344 */
    for (int e = -1; e >= P10_MIN; e--) {
        uint64_t rem = 0;
        for (int i = P10_LIMBS - 1; i >= 0; i--) {
            uint64_t t = (rem << 32) | x[i];
            x[i] = (uint32_t)(t / 10);
            rem = t % 10;
        }
        top128(x, P10_LIMBS, &st->pow10[e - P10_MIN][0], &st->pow10[e - P10_MIN][1]);
    }
    st->el_ok = 1;
}
#else
static void
fill_pow10(modstate *st)
{
    st->el_ok = 0;
}
#endif

static int
parse_float(const modstate *st, const unsigned char *s, Py_ssize_t n, double *out)
{
    char tmp[64];
    Py_ssize_t i = 0;
    int neg = 0;
    uint64_t mant = 0;    /* the digits, leading zeros included ... */
    int nd = 0;           /* ... while there are at most 19 of them */
    long exp10 = 0;       /* decimal exponent applied to mant */
    if (n < 1 || n >= (Py_ssize_t)sizeof(tmp))
        return 0;
    if (s[i] == '-') {
        neg = 1;
        i++;
    }
    Py_ssize_t st0 = i;
    read_run(s, n, &i, &mant, &nd);
    if (i == st0)
        return 0;
    if (i < n && s[i] == '.') {
        st0 = ++i;
        read_run(s, n, &i, &mant, &nd);
        if (i == st0)
            return 0;
        exp10 = -(long)(i - st0);
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        int eneg = 0;
        long e = 0;
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            eneg = s[i++] == '-';
        st0 = i;
        for (; i < n && is_digit(s[i]); i++) {
            if (e < 100000)
                e = e * 10 + (s[i] - '0');
        }
        if (i == st0)
            return 0;
        exp10 += eneg ? -e : e;
    }
    if (i != n)
        return 0;
    int lost = nd > 19; /* rare; strtod below */
    if (!lost && mant == 0) {
        /* every digit is 0: +-0.0 whatever the exponent */
        *out = neg ? -0.0 : 0.0;
        return 1;
    }
    if (!lost) {
        if (TP_EXACT_FLOAT_OPS && mant <= ((uint64_t)1 << 53) && exp10 >= -22 && exp10 <= 22) {
            double d = (double)mant;
            d = exp10 < 0 ? d / exact_pow10[-exp10] : d * exact_pow10[exp10];
            *out = neg ? -d : d;
            return 1;
        }
#if TP_EISEL_LEMIRE
        if (st->el_ok && exp10 >= P10_MIN && exp10 <= P10_MAX
            && eisel_lemire(st, mant, (int)exp10, neg, out))
            return 1;
#endif
    }
    memcpy(tmp, s, (size_t)n);
    tmp[n] = '\0';
    char *endp = NULL;
    double d = PyOS_string_to_double(tmp, &endp, NULL);
    if (d == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (endp != tmp + n)
        return 0;
    *out = d;
    return 1;
}

/* ".f{1,6}" at s[0..n) (s[0] is '.'), right-padded to microseconds. */
TP_INLINE int
parse_fraction(const unsigned char *s, Py_ssize_t n, int *us)
{
    static const int scale[] = {0, 100000, 10000, 1000, 100, 10, 1};
    Py_ssize_t k = n - 1;
    if (s[0] != '.' || k < 1 || k > 6)
        return 0;
    int v = 0;
    for (Py_ssize_t i = 1; i < n; i++) {
        if (!is_digit(s[i]))
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *us = v * scale[k];
    return 1;
}

TP_INLINE int
days_in_month(int y, int m)
{
    static const int dim[] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dim[m];
}

#if TP_SWAR_DIGITS
/* Eight bytes as one little-endian word, and the mask of the '0' bytes. */
#define LE8(a, b, c, d, e, f, g, h)                                                  \
    ((uint64_t)(unsigned char)(a) | (uint64_t)(unsigned char)(b) << 8                \
     | (uint64_t)(unsigned char)(c) << 16 | (uint64_t)(unsigned char)(d) << 24       \
     | (uint64_t)(unsigned char)(e) << 32 | (uint64_t)(unsigned char)(f) << 40       \
     | (uint64_t)(unsigned char)(g) << 48 | (uint64_t)(unsigned char)(h) << 56)
#define ZMASK(a, b, c, d, e, f, g, h)                                                \
    LE8((a) == '0' ? 0xFF : 0, (b) == '0' ? 0xFF : 0, (c) == '0' ? 0xFF : 0,         \
        (d) == '0' ? 0xFF : 0, (e) == '0' ? 0xFF : 0, (f) == '0' ? 0xFF : 0,         \
        (g) == '0' ? 0xFF : 0, (h) == '0' ? 0xFF : 0)
#define LAYOUT_YMD LE8('0', '0', '0', '0', '-', '0', '0', '-')
#define DIGITS_YMD ZMASK('0', '0', '0', '0', '-', '0', '0', '-')
#define LAYOUT_HMS LE8('0', '0', ':', '0', '0', ':', '0', '0')
#define DIGITS_HMS ZMASK('0', '0', ':', '0', '0', ':', '0', '0')

/* The 8 bytes at s against a layout: digits where the layout has '0'
 * (digit_bytes), exactly the layout's byte elsewhere.  On a match *x
 * holds the digit values in their byte positions (and 0 elsewhere). */
TP_INLINE int
match8(const unsigned char *s, uint64_t layout, uint64_t digit_bytes, uint64_t *x)
{
    /* '0'..'9' ^ '0' is 0..9; a matching literal byte gives 0 */
    uint64_t v = load8(s) ^ layout;
    if ((((v + 0x7676767676767676ULL) | v) & 0x8080808080808080ULL) != 0
        || (v & ~digit_bytes) != 0)
        return 0;
    *x = v;
    return 1;
}

/* digit value in byte k of a match8 result */
#define DIG(x, k) ((int)(((x) >> (8 * (k))) & 0xFF))
#endif

/* HH:MM:SS at s[0..8) (no range check). */
TP_INLINE int
parse_hh_mm_ss(const unsigned char *s, int *h, int *m, int *sec)
{
#if TP_SWAR_DIGITS
    uint64_t x;
    if (!match8(s, LAYOUT_HMS, DIGITS_HMS, &x))
        return 0;
    *h = DIG(x, 0) * 10 + DIG(x, 1);
    *m = DIG(x, 3) * 10 + DIG(x, 4);
    *sec = DIG(x, 6) * 10 + DIG(x, 7);
#else
    if (!(is_digit(s[0]) && is_digit(s[1]) && s[2] == ':' && is_digit(s[3]) && is_digit(s[4])
          && s[5] == ':' && is_digit(s[6]) && is_digit(s[7])))
        return 0;
    *h = two_digits(s);
    *m = two_digits(s + 3);
    *sec = two_digits(s + 6);
#endif
    return 1;
}

/* YYYY-MM-DD with a date.date-valid value (s has at least 10 bytes). */
TP_INLINE int
parse_ymd(const unsigned char *s, int *y, int *m, int *d)
{
#if TP_SWAR_DIGITS
    uint64_t x;
    if (!match8(s, LAYOUT_YMD, DIGITS_YMD, &x) || !is_digit(s[8]) || !is_digit(s[9]))
        return 0;
    *y = DIG(x, 0) * 1000 + DIG(x, 1) * 100 + DIG(x, 2) * 10 + DIG(x, 3);
    *m = DIG(x, 5) * 10 + DIG(x, 6);
#else
    if (!(is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) && s[4] == '-'
          && is_digit(s[5]) && is_digit(s[6]) && s[7] == '-' && is_digit(s[8]) && is_digit(s[9])))
        return 0;
    *y = two_digits(s) * 100 + two_digits(s + 2);
    *m = two_digits(s + 5);
#endif
    *d = two_digits(s + 8);
    if (*y < 1 || *m < 1 || *m > 12 || *d < 1 || *d > days_in_month(*y, *m))
        return 0;
    return 1;
}

/* YYYY-MM-DD[ T]HH:MM:SS(.f{1,6})? with valid fields -> convert_datetime. */
static PyObject *
fast_datetime(const unsigned char *s, Py_ssize_t n)
{
    int y, mo, d, h, mi, sec, us = 0;
    if (n < 19 || n == 20 || n > 26)
        return NULL;
    if (!parse_ymd(s, &y, &mo, &d))
        return NULL;
    if (!((s[10] == ' ' || s[10] == 'T') && parse_hh_mm_ss(s + 11, &h, &mi, &sec)))
        return NULL;
    if (h > 23 || mi > 59 || sec > 59)
        return NULL;
    if (n > 19 && !parse_fraction(s + 19, n - 19, &us))
        return NULL;
    return PyDateTime_FromDateAndTime(y, mo, d, h, mi, sec, us);
}

/* YYYY-MM-DD valid -> convert_date. */
static PyObject *
fast_date(const unsigned char *s, Py_ssize_t n)
{
    int y, m, d;
    if (n != 10 || !parse_ymd(s, &y, &m, &d))
        return NULL;
    return PyDate_FromDate(y, m, d);
}

/* Reads 1..maxd digits at s[*i]; returns -1 if none or too many. */
static int
read_digits(const unsigned char *s, Py_ssize_t n, Py_ssize_t *i, int maxd)
{
    int v = 0, k = 0;
    while (*i < n && is_digit(s[*i])) {
        if (++k > maxd)
            return -1;
        v = v * 10 + (s[*i] - '0');
        (*i)++;
    }
    return k ? v : -1;
}

/* H:M:S(.f)? with 1..hmax hour digits, 1..2 minute/second digits; the exact
 * language of PyMySQL's TIMEDELTA_RE / TIME_RE after an optional sign. */
TP_INLINE int
parse_hms(const unsigned char *s, Py_ssize_t n, Py_ssize_t i, int hmax,
          int *h, int *m, int *sec, int *us)
{
    *us = 0;
    if (n - i >= 8 && parse_hh_mm_ss(s + i, h, m, sec)) {
        /* the usual HH:MM:SS layout */
        i += 8;
        return i == n || parse_fraction(s + i, n - i, us);
    }
    if ((*h = read_digits(s, n, &i, hmax)) < 0 || i >= n || s[i++] != ':')
        return 0;
    if ((*m = read_digits(s, n, &i, 2)) < 0 || i >= n || s[i++] != ':')
        return 0;
    if ((*sec = read_digits(s, n, &i, 2)) < 0)
        return 0;
    if (i == n)
        return 1;
    return parse_fraction(s + i, n - i, us);
}

/* -?H{1,3}:M{1,2}:S{1,2}(.f{1,6})? -> convert_timedelta (which never fails
 * on a match: at most 999 hours). */
static PyObject *
fast_timedelta(const unsigned char *s, Py_ssize_t n)
{
    int h, m, sec, us;
    Py_ssize_t i = 0;
    int neg = 0;
    if (n > 0 && s[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (!parse_hms(s, n, i, 3, &h, &m, &sec, &us))
        return NULL;
    const long long day_us = 86400LL * 1000000LL;
    long long t = ((long long)h * 3600 + (long long)m * 60 + sec) * 1000000LL + us;
    if (neg)
        t = -t;
    long long days = t / day_us, rem = t % day_us;
    if (rem < 0) {
        rem += day_us;
        days -= 1;
    }
    return PyDelta_FromDSU((int)days, (int)(rem / 1000000), (int)(rem % 1000000));
}

/* H{1,2}:M{1,2}:S{1,2}(.f{1,6})? valid time of day -> convert_time. */
static PyObject *
fast_time(const unsigned char *s, Py_ssize_t n)
{
    int h, m, sec, us;
    if (!parse_hms(s, n, 0, 2, &h, &m, &sec, &us))
        return NULL;
    if (h > 23 || m > 59 || sec > 59)
        return NULL;
    return PyTime_FromTime(h, m, sec, us);
}

/* ------------------------------------------------------------ decoding */

/* Text decoding.  The result of a successful decode is fully determined by
 * the bytes (a str is canonical: its storage kind follows from its largest
 * code point), so building the str directly gives exactly what CPython's
 * decoder builds; anything that is not valid input goes to CPython's decoder
 * for the very exception PyMySQL gets. */

/* Length of the ASCII prefix of s[0..n). */
static inline Py_ssize_t
ascii_prefix(const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
#if TP_SWAR_DIGITS
    if (n >= 8) {
        /* whole words, then the last 8 bytes (overlapping what is known to
         * be ASCII); the lowest set high bit is the first non-ASCII byte */
        uint64_t m;
        for (; n - i >= 8; i += 8) {
            if ((m = load8(s + i) & 0x8080808080808080ULL) != 0)
                return i + (__builtin_ctzll(m) >> 3);
        }
        if (i < n && (m = load8(s + n - 8) & 0x8080808080808080ULL) != 0)
            return n - 8 + (__builtin_ctzll(m) >> 3);
        return n;
    }
#endif
    while (i < n && s[i] < 0x80)
        i++;
    return i;
}

/* str of the n ASCII bytes at s. */
static PyObject *
new_ascii(const char *s, Py_ssize_t n)
{
    if (n == 1)
        return PyUnicode_FromOrdinal((unsigned char)s[0]); /* cached */
    PyObject *u = PyUnicode_New(n, 127);
    if (u != NULL && n > 0)
        memcpy(PyUnicode_1BYTE_DATA(u), s, (size_t)n);
    return u;
}

static PyObject *
decode_ascii(const char *s, Py_ssize_t n)
{
    if (ascii_prefix((const unsigned char *)s, n) == n)
        return new_ascii(s, n);
    return PyUnicode_DecodeASCII(s, n, NULL); /* raises */
}

static inline int
is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

/* Writes the code points of the (already validated) UTF-8 in s[i..n) to
 * out[k..], one function per storage width. */
#define UTF8_FILL(NAME, T)                                                          \
    static void NAME(const unsigned char *s, Py_ssize_t i, Py_ssize_t n, T *out,   \
                     Py_ssize_t k)                                                  \
    {                                                                               \
        while (i < n) {                                                             \
            unsigned int c = s[i];                                                  \
            if (c < 0x80) {                                                         \
                out[k++] = (T)c;                                                    \
                i++;                                                                \
            }                                                                       \
            else if (c < 0xE0) {                                                    \
                out[k++] = (T)(((c & 0x1F) << 6) | (s[i + 1] & 0x3F));              \
                i += 2;                                                             \
            }                                                                       \
            else if (c < 0xF0) {                                                    \
                out[k++] = (T)(((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6)        \
                               | (s[i + 2] & 0x3F));                                \
                i += 3;                                                             \
            }                                                                       \
            else {                                                                  \
                out[k++] = (T)(((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12)       \
                               | ((s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F));     \
                i += 4;                                                             \
            }                                                                       \
        }                                                                           \
    }
UTF8_FILL(utf8_fill_ucs1, Py_UCS1)
UTF8_FILL(utf8_fill_ucs2, Py_UCS2)
UTF8_FILL(utf8_fill_ucs4, Py_UCS4)
#undef UTF8_FILL

/* bytes.decode("utf-8"): validates the well-formed sequences of Unicode
 * table 3-7 (what CPython's strict decoder accepts: no overlongs, no
 * surrogates, nothing above U+10FFFF, nothing truncated) while counting
 * code points and finding the largest, then fills a str of that kind. */
static PyObject *
decode_utf8(const char *str, Py_ssize_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    Py_ssize_t head = ascii_prefix(s, n);
    if (head == n)
        return new_ascii(str, n);
    Py_ssize_t i = head, chars = head;
    Py_UCS4 maxc = 0;
    while (i < n) {
        unsigned int c = s[i];
        Py_UCS4 cp;
        if (c < 0x80) {
            i++;
            chars++;
            continue;
        }
        if (c < 0xC2) {
            goto invalid; /* continuation byte, or overlong 2-byte lead */
        }
        else if (c < 0xE0) {
            if (n - i < 2 || !is_cont(s[i + 1]))
                goto invalid;
            cp = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F);
            i += 2;
        }
        else if (c < 0xF0) {
            if (n - i < 3 || !is_cont(s[i + 1]) || !is_cont(s[i + 2])
                || (c == 0xE0 && s[i + 1] < 0xA0)     /* overlong */
                || (c == 0xED && s[i + 1] >= 0xA0))   /* surrogate */
                goto invalid;
            cp = ((c & 0x0F) << 12) | ((Py_UCS4)(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
            i += 3;
        }
        else if (c < 0xF5) {
            if (n - i < 4 || !is_cont(s[i + 1]) || !is_cont(s[i + 2]) || !is_cont(s[i + 3])
                || (c == 0xF0 && s[i + 1] < 0x90)     /* overlong */
                || (c == 0xF4 && s[i + 1] >= 0x90))   /* above U+10FFFF */
                goto invalid;
            cp = ((Py_UCS4)(c & 0x07) << 18) | ((Py_UCS4)(s[i + 1] & 0x3F) << 12)
                 | ((Py_UCS4)(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
            i += 4;
        }
        else {
            goto invalid;
        }
        if (cp > maxc)
            maxc = cp;
        chars++;
    }
    PyObject *u = PyUnicode_New(chars, maxc);
    if (u == NULL)
        return NULL;
    switch (PyUnicode_KIND(u)) {
    case PyUnicode_1BYTE_KIND:
        memcpy(PyUnicode_1BYTE_DATA(u), s, (size_t)head);
        utf8_fill_ucs1(s, head, n, PyUnicode_1BYTE_DATA(u), head);
        break;
    case PyUnicode_2BYTE_KIND:
        utf8_fill_ucs2(s, 0, n, PyUnicode_2BYTE_DATA(u), 0);
        break;
    default:
        utf8_fill_ucs4(s, 0, n, PyUnicode_4BYTE_DATA(u), 0);
        break;
    }
    return u;
invalid:
    return PyUnicode_DecodeUTF8(str, n, NULL); /* raises UnicodeDecodeError */
}

/* bytes -> optional .decode(encoding), exactly as PyMySQL does it. */
static PyObject *
decode_text(modstate *st, const column *c, const char *s, Py_ssize_t n)
{
    switch (c->enc) {
    case ENC_BYTES:
        return PyBytes_FromStringAndSize(s, n);
    case ENC_ASCII:
        return decode_ascii(s, n);
    case ENC_UTF8:
        return decode_utf8(s, n);
    case ENC_LATIN1:
        return PyUnicode_DecodeLatin1(s, n, NULL);
    case ENC_CP1252:
        if (ascii_prefix((const unsigned char *)s, n) == n)
            return new_ascii(s, n);
        return PyUnicode_Decode(s, n, "cp1252", NULL);
    default: {
        /* Unknown spelling or not even a str: call bytes.decode itself so
         * that every outcome (LookupError, TypeError, ...) is PyMySQL's. */
        PyObject *b = PyBytes_FromStringAndSize(s, n);
        if (b == NULL)
            return NULL;
        PyObject *r = PyObject_CallMethodOneArg(b, st->str_decode, c->encoding);
        Py_DECREF(b);
        return r;
    }
    }
}

/* The converter applied to the decoded text, exactly as PyMySQL calls it. */
static PyObject *
call_converter(modstate *st, const column *c, const char *s, Py_ssize_t n)
{
    PyObject *text = decode_text(st, c, s, n);
    if (text == NULL)
        return NULL;
    PyObject *r;
    if (c->conv == CONV_DECIMAL && st->decimal_new != NULL) {
        /* Decimal(text) minus the generic call machinery; see
         * decimal_new_ok().  The tuple steals text. */
        PyObject *args = PyTuple_New(1);
        if (args == NULL) {
            Py_DECREF(text);
            return NULL;
        }
        PyTuple_SET_ITEM(args, 0, text);
        r = st->decimal_new((PyTypeObject *)c->converter, args, NULL);
        Py_DECREF(args);
        return r;
    }
    r = PyObject_CallOneArg(c->converter, text);
    Py_DECREF(text);
    return r;
}

static PyObject *
convert_value(modstate *st, const column *c, const char *s, Py_ssize_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    PyObject *r;
    switch (c->op) {
    case OP_UTF8:
        return decode_utf8(s, n);
    case OP_TEXT:
        return decode_text(st, c, s, n);
    case OP_INT:
        r = fast_int(u, n);
        break;
    case OP_FLOAT: {
        double d;
        if (parse_float(st, u, n, &d))
            return PyFloat_FromDouble(d);
        r = NULL;
        break;
    }
    case OP_DATETIME:
        r = fast_datetime(u, n);
        break;
    case OP_DATE:
        r = fast_date(u, n);
        break;
    case OP_TIMEDELTA:
        r = fast_timedelta(u, n);
        break;
    case OP_TIME:
        r = fast_time(u, n);
        break;
    default:
        return call_converter(st, c, s, n);
    }
    /* A fast constructor only returns NULL without an exception when the
     * text was not canonical; with an exception (MemoryError) we must
     * report it. */
    if (r != NULL || PyErr_Occurred())
        return r;
    return call_converter(st, c, s, n);
}

/* True if the collector could need to see v: the test CPython's
 * _PyTuple_MaybeUntrack applies to each item. */
static inline int
may_be_tracked(PyObject *v)
{
    if (!PyType_IS_GC(Py_TYPE(v)))
        return 0;
    if (PyTuple_CheckExact(v))
        return PyObject_GC_IsTracked(v);
    return PyObject_IS_GC(v);
}

/* Offsets of each column value in one payload; len < 0 marks NULL.
 * Returns 1 if the payload is exactly ncols well-formed length-encoded
 * strings / NULLs and nothing else. */
static int
split_payload(const unsigned char *b, Py_ssize_t q, Py_ssize_t stop, Py_ssize_t ncols,
              Py_ssize_t *offs, Py_ssize_t *lens)
{
    for (Py_ssize_t i = 0; i < ncols; i++) {
        if (q >= stop)
            return 0; /* short row */
        unsigned int c = b[q++];
        unsigned long long len;
        if (c < 0xFB) {
            len = c;
        }
        else if (c == 0xFB) {
            offs[i] = 0;
            lens[i] = -1;
            continue;
        }
        else if (c == 0xFC) {
            if (stop - q < 2)
                return 0;
            len = (unsigned long long)b[q] | ((unsigned long long)b[q + 1] << 8);
            q += 2;
        }
        else if (c == 0xFD) {
            if (stop - q < 3)
                return 0;
            len = (unsigned long long)b[q] | ((unsigned long long)b[q + 1] << 8)
                  | ((unsigned long long)b[q + 2] << 16);
            q += 3;
        }
        else if (c == 0xFE) {
            if (stop - q < 8)
                return 0;
            len = 0;
            for (int k = 7; k >= 0; k--)
                len = (len << 8) | b[q + k];
            q += 8;
        }
        else {
            return 0; /* 0xFF prefix */
        }
        if (len > (unsigned long long)(stop - q))
            return 0;
        offs[i] = q;
        lens[i] = (Py_ssize_t)len;
        q += (Py_ssize_t)len;
    }
    return q == stop; /* trailing bytes -> let PyMySQL have it */
}

/* Converts an index-like argument; *out is -1 when it does not fit in a
 * Py_ssize_t or is negative (the caller reports a range error). */
static int
index_arg(PyObject *obj, Py_ssize_t *out)
{
    PyObject *idx = PyNumber_Index(obj);
    if (idx == NULL)
        return -1;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(idx, &overflow);
    Py_DECREF(idx);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow != 0 || v < 0 || v > PY_SSIZE_T_MAX)
        *out = -1;
    else
        *out = (Py_ssize_t)v;
    return 0;
}

#define STACK_COLS 64
#define STACK_ROWS 64

static PyObject *
decode_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    modstate *st = get_state(module);
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError,
                     "decode_rows() takes exactly 5 positional arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *bufobj = args[0];
    if (Py_TYPE(args[4]) != st->plan_type) {
        PyErr_SetString(PyExc_TypeError, PLAN_MSG);
        return NULL;
    }
    PlanObject *plan = (PlanObject *)args[4];
    if (!PyObject_CheckBuffer(bufobj)) {
        PyErr_Format(PyExc_TypeError, BUF_MSG, Py_TYPE(bufobj)->tp_name);
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(bufobj, &view, PyBUF_SIMPLE) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BufferError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_BufferError, CONTIG_MSG);
        }
        return NULL;
    }
    /* From here on every exit goes through `done` to release the export. */
    PyObject *result = NULL, *rows = NULL;
    Py_ssize_t stack_offs[STACK_COLS], stack_lens[STACK_COLS];
    Py_ssize_t *offs = stack_offs, *lens = stack_lens;
    /* Decoded rows are kept in a plain array and moved into an exactly
     * sized list at the end: no list resizing, and no collection
     * triggered meanwhile walks a growing list of rows. */
    PyObject *stack_rows[STACK_ROWS];
    PyObject **rowv = stack_rows;
    Py_ssize_t nrows = 0, rowcap = STACK_ROWS;
    Py_ssize_t pos, end, seq;
    if (index_arg(args[1], &pos) < 0 || index_arg(args[2], &end) < 0
        || index_arg(args[3], &seq) < 0)
        goto done;
    if (pos < 0 || end < 0 || pos > end || end > view.len) {
        PyErr_SetString(PyExc_ValueError, ARGS_MSG);
        goto done;
    }
    if (seq < 0 || seq > 255) {
        PyErr_SetString(PyExc_ValueError, SEQ_MSG);
        goto done;
    }
    Py_ssize_t ncols = Py_SIZE(plan);
    if (ncols > STACK_COLS) {
        offs = PyMem_New(Py_ssize_t, (size_t)ncols);
        lens = PyMem_New(Py_ssize_t, (size_t)ncols);
        if (offs == NULL || lens == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    /* Keep the plan alive even if a converter drops the last other ref. */
    Py_INCREF(plan);
    const unsigned char *b = (const unsigned char *)view.buf;
    Py_ssize_t p = pos;
    while (end - p >= 4) {
        Py_ssize_t plen = (Py_ssize_t)b[p] | ((Py_ssize_t)b[p + 1] << 8)
                          | ((Py_ssize_t)b[p + 2] << 16);
        if (plen == 0xFFFFFF || b[p + 3] != seq || plen == 0)
            break;
        if (plen > end - p - 4)
            break;
        Py_ssize_t start = p + 4, stop = start + plen;
        unsigned char first = b[start];
        if (first == 0xFF || (first == 0xFE && plen < 9))
            break;
        if (!split_payload(b, start, stop, ncols, offs, lens))
            break;
        PyObject *row = PyTuple_New(ncols);
        if (row == NULL)
            goto fail_loop;
        int atomic = 1;
        for (Py_ssize_t i = 0; i < ncols; i++) {
            PyObject *v;
            if (lens[i] < 0) {
                v = Py_None;
                Py_INCREF(v);
            }
            else {
                v = convert_value(st, &plan->cols[i], (const char *)b + offs[i], lens[i]);
                if (v == NULL) {
                    Py_DECREF(row);
                    goto fail_loop;
                }
                if (atomic && may_be_tracked(v))
                    atomic = 0;
            }
            PyTuple_SET_ITEM(row, i, v);
        }
        /* What the collector would do on its next pass anyway
         * (_PyTuple_MaybeUntrack): a tuple of objects that can never be
         * part of a cycle (str, int, float, Decimal, datetime, None, ...)
         * needs no tracking.  Saves the young-generation collections most
         * of their work; values and types are untouched. */
        if (atomic)
            PyObject_GC_UnTrack(row);
        if (nrows == rowcap) {
            PyObject **nv = NULL;
            if (rowcap <= PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(PyObject *) / 2) {
                if (rowv == stack_rows) {
                    nv = PyMem_New(PyObject *, (size_t)rowcap * 2);
                    if (nv != NULL)
                        memcpy(nv, stack_rows, sizeof stack_rows);
                }
                else {
                    nv = PyMem_Resize(rowv, PyObject *, (size_t)rowcap * 2);
                }
            }
            if (nv == NULL) {
                Py_DECREF(row);
                PyErr_NoMemory();
                goto fail_loop;
            }
            rowv = nv;
            rowcap *= 2;
        }
        rowv[nrows++] = row;
        seq = (seq + 1) & 0xFF;
        p = stop;
    }
    Py_DECREF(plan);
    rows = PyList_New(nrows);
    if (rows == NULL)
        goto done;
    for (Py_ssize_t k = 0; k < nrows; k++)
        PyList_SET_ITEM(rows, k, rowv[k]);
    nrows = 0; /* owned by the list now */
    result = Py_BuildValue("(Onn)", rows, p, seq);
    goto done;

fail_loop:
    Py_DECREF(plan);
done:
    for (Py_ssize_t k = 0; k < nrows; k++)
        Py_DECREF(rowv[k]);
    if (rowv != stack_rows)
        PyMem_Free(rowv);
    Py_XDECREF(rows);
    if (offs != stack_offs)
        PyMem_Free(offs);
    if (lens != stack_lens)
        PyMem_Free(lens);
    PyBuffer_Release(&view);
    return result;
}

/* ---------------------------------------------------------------- module */

PyDoc_STRVAR(make_plan_doc,
"make_plan(converters, /) -> Plan\n\n"
"Build a decoding plan from PyMySQL's MySQLResult.converters list.");

PyDoc_STRVAR(decode_rows_doc,
"decode_rows(buf, pos, end, seq, plan, /) -> (rows, new_pos, new_seq)\n\n"
"Decode the complete text-protocol row packets in buf[pos:end]; stop before\n"
"the first packet that is incomplete, multi-packet, out of sequence, EOF/OK,\n"
"ERR or malformed.");

static PyMethodDef module_methods[] = {
    {"make_plan", (PyCFunction)make_plan, METH_O, make_plan_doc},
    {"decode_rows", (PyCFunction)(void (*)(void))decode_rows, METH_FASTCALL, decode_rows_doc},
    {NULL, NULL, 0, NULL}
};

static PyObject *
import_attr(const char *modname, const char *attr)
{
    PyObject *mod = PyImport_ImportModule(modname);
    if (mod == NULL)
        return NULL;
    PyObject *r = PyObject_GetAttrString(mod, attr);
    Py_DECREF(mod);
    return r;
}

/* Calling a type T with one positional argument runs T->tp_new(T, args,
 * NULL) and then, on an instance of T, T->tp_init, which for a type that
 * does not define __init__ is object.__init__: a no-op here (T overrides
 * __new__, so excess arguments are allowed).  When that holds for a static
 * (hence unchangeable) type -- the C decimal.Decimal -- tp_new alone is the
 * whole call.  The pure-Python _pydecimal.Decimal is a heap type and is
 * simply called. */
static newfunc
decimal_new_ok(PyObject *dec)
{
    if (!PyType_Check(dec))
        return NULL;
    PyTypeObject *tp = (PyTypeObject *)dec;
    if (Py_TYPE(dec) != &PyType_Type || PyType_HasFeature(tp, Py_TPFLAGS_HEAPTYPE)
        || tp->tp_new == NULL || tp->tp_new == PyBaseObject_Type.tp_new
        || tp->tp_init != PyBaseObject_Type.tp_init)
        return NULL;
    return tp->tp_new;
}

static int
module_exec(PyObject *module)
{
    modstate *st = get_state(module);
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return -1;
    fill_pow10(st);
    st->plan_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &plan_spec, NULL);
    if (st->plan_type == NULL)
        return -1;
    if (PyModule_AddObjectRef(module, "Plan", (PyObject *)st->plan_type) < 0)
        return -1;
    if ((st->through = import_attr("pymysql.converters", "through")) == NULL
        || (st->decimal = import_attr("decimal", "Decimal")) == NULL
        || (st->convert_datetime = import_attr("pymysql.converters", "convert_datetime")) == NULL
        || (st->convert_date = import_attr("pymysql.converters", "convert_date")) == NULL
        || (st->convert_timedelta = import_attr("pymysql.converters", "convert_timedelta")) == NULL
        || (st->convert_time = import_attr("pymysql.converters", "convert_time")) == NULL
        || (st->str_decode = PyUnicode_InternFromString("decode")) == NULL)
        return -1;
    st->decimal_new = decimal_new_ok(st->decimal);
    if (PyModule_AddStringConstant(module, "IMPL", "c") < 0)
        return -1;
    return 0;
}

static int
module_traverse(PyObject *module, visitproc visit, void *arg)
{
    modstate *st = get_state(module);
    Py_VISIT(st->plan_type);
    Py_VISIT(st->through);
    Py_VISIT(st->decimal);
    Py_VISIT(st->convert_datetime);
    Py_VISIT(st->convert_date);
    Py_VISIT(st->convert_timedelta);
    Py_VISIT(st->convert_time);
    Py_VISIT(st->str_decode);
    return 0;
}

static int
module_clear(PyObject *module)
{
    modstate *st = get_state(module);
    Py_CLEAR(st->plan_type);
    Py_CLEAR(st->through);
    Py_CLEAR(st->decimal);
    Py_CLEAR(st->convert_datetime);
    Py_CLEAR(st->convert_date);
    Py_CLEAR(st->convert_timedelta);
    Py_CLEAR(st->convert_time);
    Py_CLEAR(st->str_decode);
    return 0;
}

static void
module_free(void *module)
{
    module_clear((PyObject *)module);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL}
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tornpool.codec._speedups",
    .m_doc = "C twin of tornpool.codec._pure: MySQL text-protocol row decoding.",
    .m_size = sizeof(modstate),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}

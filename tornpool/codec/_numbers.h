/*
 * Strict parsers for the canonical server text of numbers, dates and times.
 *
 * Part of tornpool.codec._speedups: included once by _speedups.c, which is
 * compiled as one translation unit (so the hot loops inline across the
 * parts); not a standalone header.
 */

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

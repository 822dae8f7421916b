/*
 * Text decoding exactly as bytes.decode() does it.
 *
 * Part of tornpool.codec._speedups: included once by _speedups.c, which is
 * compiled as one translation unit (so the hot loops inline across the
 * parts); not a standalone header.
 */

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

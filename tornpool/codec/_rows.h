/*
 * Row decoding: one row payload -> tuple, and decode_rows().
 *
 * Part of tornpool.codec._speedups: included once by _speedups.c, which is
 * compiled as one translation unit (so the hot loops inline across the
 * parts); not a standalone header.
 */

static const char ARGS_MSG[] = "decode_rows() needs 0 <= pos <= end <= len(buf)";
static const char SEQ_MSG[] = "decode_rows() needs 0 <= seq <= 255";
static const char PLAN_MSG[] =
    "decode_rows() needs a Plan made by make_plan() of the same implementation";
static const char BUF_MSG[] = "decode_rows() argument 'buf' must be a bytes-like object, not '%.200s'";
static const char CONTIG_MSG[] = "decode_rows() needs a C-contiguous buffer";

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

/* Forced inline into decode_row, its one caller: the per-value parsers
 * then inline there too (one copy, shared by decode_rows and the reader). */
TP_INLINE PyObject *
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
TP_INLINE int
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

/* The row tuple of the payload b[start..stop) for plan, PyMySQL's
 * _read_row_from_packet: NULL with an exception if a decoder or converter
 * raised, NULL without one if the payload is not exactly plan->ncols
 * well-formed values.  offs/lens hold at least ncols entries.
 * One out-of-line copy for both row loops (decode_rows, the reader): the
 * call costs a few instructions a row, two inlined copies would cost the
 * value parsers their inlining. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static PyObject *
decode_row(modstate *st, PlanObject *plan, const unsigned char *b, Py_ssize_t start,
           Py_ssize_t stop, Py_ssize_t *offs, Py_ssize_t *lens)
{
    Py_ssize_t ncols = Py_SIZE(plan);
    if (!split_payload(b, start, stop, ncols, offs, lens))
        return NULL;
    PyObject *row = PyTuple_New(ncols);
    if (row == NULL)
        return NULL;
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
                return NULL;
            }
            if (atomic && may_be_tracked(v))
                atomic = 0;
        }
        PyTuple_SET_ITEM(row, i, v);
    }
    /* What the collector would do on its next pass anyway
     * (_PyTuple_MaybeUntrack): a tuple of objects that can never be part of
     * a cycle (str, int, float, Decimal, datetime, None, ...) needs no
     * tracking.  Saves the young-generation collections most of their work;
     * values and types are untouched. */
    if (atomic)
        PyObject_GC_UnTrack(row);
    return row;
}

/* Converts an index-like argument: *out is -1 when it is negative, `above`
 * when it does not fit in a Py_ssize_t (the caller reports range errors). */
static int
index_value(PyObject *obj, Py_ssize_t *out, Py_ssize_t above)
{
    if (PyLong_CheckExact(obj)) {
        /* the usual case, without the __index__ round trip */
        Py_ssize_t v = PyLong_AsSsize_t(obj);
        if (v != -1 || !PyErr_Occurred()) {
            *out = v < 0 ? -1 : v;
            return 0;
        }
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear(); /* too large either way: the sign is found below */
    }
    PyObject *idx = PyNumber_Index(obj);
    if (idx == NULL)
        return -1;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(idx, &overflow);
    Py_DECREF(idx);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow > 0 || v > PY_SSIZE_T_MAX)
        *out = above;
    else if (overflow < 0 || v < 0)
        *out = -1;
    else
        *out = (Py_ssize_t)v;
    return 0;
}

/* An offset or sequence id: -1 (out of range) when negative or huge. */
static int
index_arg(PyObject *obj, Py_ssize_t *out)
{
    return index_value(obj, out, -1);
}

/* The C-contiguous buffer of obj in *view (release it with
 * PyBuffer_Release), or -1 with TypeError(type_msg % type name) for a
 * non-buffer or BufferError(contig_msg) for a non-contiguous one: the
 * checks and messages of every function taking a buffer, as the pure twins
 * make them with memoryview. */
static int
get_buffer(PyObject *obj, Py_buffer *view, const char *type_msg, const char *contig_msg)
{
    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError, type_msg, Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BufferError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_BufferError, contig_msg);
        }
        return -1;
    }
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
    Py_buffer view;
    if (get_buffer(bufobj, &view, BUF_MSG, CONTIG_MSG) < 0)
        return NULL;
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
        PyObject *row = decode_row(st, plan, b, start, stop, offs, lens);
        if (row == NULL) {
            if (PyErr_Occurred())
                goto fail_loop;
            break; /* not exactly ncols values: left to PyMySQL */
        }
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

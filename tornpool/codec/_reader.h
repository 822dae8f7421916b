/*
 * ResponseReader: one command's whole text-protocol response (OK, ERR,
 * result-set header, column-definition block, rows, EOF), a feed() call at a
 * time, straight out of the caller's receive buffer.  Twin of
 * tornpool/codec/_pure_reader.py (same statuses, attributes, exceptions and
 * messages); rows are decoded by decode_row() from _rows.h, the decode_rows
 * inner loop.
 *
 * Part of tornpool.codec._speedups: included once by _speedups.c, which is
 * compiled as one translation unit (so the hot loops inline across the
 * parts); not a standalone header.
 *
 * State lives in the reader object between calls as offsets and counters
 * only: no pointer into the caller's buffer survives a call.  feed() works
 * on local copies and writes them back only once the outcome is certain, so
 * a call that raises leaves the reader exactly as it was.
 */

enum reader_status {
    ST_NEED = 0, ST_OK, ST_RESULT, ST_ERROR, ST_META, ST_LOCAL_INFILE,
    ST_COLUMNS, ST_ROWS, ST_END, ST_BAD_SEQ
};
static const char *const status_names[] = {
    "NEED", "OK", "RESULT", "ERROR", "META", "LOCAL_INFILE", "COLUMNS", "ROWS", "END", "BAD_SEQ"
};

enum reader_phase { PH_IDLE = 0, PH_FIRST, PH_BLOCK, PH_ROWS, PH_DONE };

#define MAX_PACKET 0xFFFFFF
#define MAX_COLUMNS 4096

static const char R_BUSY_MSG[] =
    "ResponseReader is already running feed() (a re-entrant call from a converter?)";
static const char R_IDLE_MSG[] = "ResponseReader.feed() before start()";
static const char R_DONE_MSG[] =
    "ResponseReader.feed() after the response ended; call start() for the next one";
static const char R_BUF_MSG[] =
    "ResponseReader.feed() argument 'buf' must be a bytes-like object, not '%.200s'";
static const char R_CONTIG_MSG[] = "ResponseReader.feed() needs a C-contiguous buffer";
static const char R_ARGS_MSG[] = "ResponseReader.feed() needs 0 <= pos <= end <= len(buf)";
static const char R_LIMIT_MSG[] = "ResponseReader.feed() needs limit >= 0";
static const char R_META_MSG[] = "ResponseReader.feed() argument 'meta' must be a dict, not '%.200s'";
static const char R_SEQ_MSG[] = "ResponseReader.start() needs 0 <= seq <= 255";
static const char R_PLAN_MSG[] =
    "ResponseReader.feed() needs meta[key].plan to be a Plan made by make_plan() "
    "of the same implementation";
static const char R_NCOLS_MSG[] = "the result set has %zd columns but meta[key].plan has %zd";
/* malformed responses (ValueError) */
static const char M_EMPTY[] = "malformed response: empty packet";
static const char M_SPLIT[] = "malformed response: a %d-byte packet where a single packet is required";
static const char M_COUNT[] = "malformed response: column count %llu (must be 1..4096)";
static const char M_LENENC[] = "malformed response: truncated length-encoded integer in the %s";
static const char M_LENENC_FF[] =
    "malformed response: 0xFF is not a length-encoded integer (in the OK packet)";
static const char M_OK[] = "malformed response: OK packet too short for its status and warnings";
static const char M_ERR[] = "malformed response: ERR packet shorter than 4 bytes";
static const char M_EOF[] = "malformed response: EOF packet shorter than 5 bytes";
static const char M_EARLY_EOF[] = "malformed response: EOF packet after %zd of %zd column definitions";
static const char M_NO_EOF[] =
    "malformed response: the column definitions are not followed by an EOF packet";
static const char M_ROW[] = "malformed response: row packet is not exactly %zd length-encoded values";
static const char M_SPLIT_ERR[] =
    "malformed response: a row split over several packets starts with 0xFF";

typedef struct {
    PyObject_HEAD
    modstate *st;            /* the module's, alive as long as our type is */
    unsigned char phase;
    unsigned char unbuffered;
    unsigned char busy;      /* inside feed()/start(): refuse re-entry */
    unsigned char has_affected, has_insert_id;
    int seq, got_seq;
    Py_ssize_t pos, need, field_count;
    unsigned long long affected, insert_id;
    long server_status, warning_count;
    PyObject *message;       /* bytes; NULL reads as b"" */
    PyObject *shape;         /* meta[key] of the current result */
    PyObject *meta_key;      /* bytes of the column block, once keyed */
    PyObject *rows;          /* list handed over by RESULT/ROWS/END */
    PyObject *error;         /* ERR payload */
    PlanObject *plan;        /* shape.plan */
    /* scratch kept across responses (no per-call allocation) */
    PyObject *memo_key;      /* the last key built: reused when the block is equal */
    PyObject **acc;          /* rows decoded and not yet handed over */
    Py_ssize_t nacc, capacc;
    Py_ssize_t *spans;       /* offsets + lengths for rows wider than STACK_COLS */
    Py_ssize_t capspans;
} ReaderObject;

static inline Py_ssize_t
pkt_len(const unsigned char *h)
{
    return (Py_ssize_t)h[0] | ((Py_ssize_t)h[1] << 8) | ((Py_ssize_t)h[2] << 16);
}

/* ------------------------------------------------------------- row store */

static int
acc_push(ReaderObject *self, PyObject *row)
{
    if (self->nacc == self->capacc) {
        Py_ssize_t cap = self->capacc ? self->capacc * 2 : 16;
        PyObject **nv = NULL;
        if (cap <= PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(PyObject *))
            nv = PyMem_Resize(self->acc, PyObject *, (size_t)cap);
        if (nv == NULL) {
            Py_DECREF(row);
            PyErr_NoMemory();
            return -1;
        }
        self->acc = nv;
        self->capacc = cap;
    }
    self->acc[self->nacc++] = row;
    return 0;
}

/* Drops the rows acc[from:]. */
static void
acc_drop(ReaderObject *self, Py_ssize_t from)
{
    while (self->nacc > from) {
        PyObject *row = self->acc[--self->nacc];
        Py_DECREF(row);
    }
}

/* A list of the rows acc[from:], which it now owns; NULL on MemoryError
 * (acc untouched). */
static PyObject *
acc_take(ReaderObject *self, Py_ssize_t from)
{
    PyObject *list = PyList_New(self->nacc - from);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t k = from; k < self->nacc; k++)
        PyList_SET_ITEM(list, k - from, self->acc[k]);
    self->nacc = from;
    return list;
}

/* Keep the scratch small after an unusually large buffered result. */
static void
acc_shrink(ReaderObject *self)
{
    if (self->nacc == 0 && self->capacc > 4096) {
        PyMem_Free(self->acc);
        self->acc = NULL;
        self->capacc = 0;
    }
}

/* ----------------------------------------------------------------- parts */

/* A length-encoded integer at b[*q] (before stop): *null for 0xFB. */
static int
read_lenenc(const unsigned char *b, Py_ssize_t *q, Py_ssize_t stop, unsigned long long *v,
            int *null, const char *where)
{
    Py_ssize_t i = *q;
    *null = 0;
    if (i >= stop)
        goto truncated;
    unsigned int c = b[i++];
    int width;
    if (c < 0xFB) {
        *v = c;
        *q = i;
        return 0;
    }
    if (c == 0xFB) {
        *v = 0;
        *null = 1;
        *q = i;
        return 0;
    }
    if (c == 0xFF) {
        PyErr_SetString(PyExc_ValueError, M_LENENC_FF);
        return -1;
    }
    width = c == 0xFC ? 2 : c == 0xFD ? 3 : 8;
    if (stop - i < width)
        goto truncated;
    unsigned long long x = 0;
    for (int k = width - 1; k >= 0; k--)
        x = (x << 8) | b[i + k];
    *v = x;
    *q = i + width;
    return 0;
truncated:
    PyErr_Format(PyExc_ValueError, M_LENENC, where);
    return -1;
}

static inline void
malformed(const char *msg)
{
    PyErr_SetString(PyExc_ValueError, msg);
}

/* The row payload split over the packets at b[p..q) (each header 4 bytes,
 * every part but the last 0xFFFFFF long), joined and decoded. */
static PyObject *
decode_split_row(ReaderObject *self, PlanObject *plan, const unsigned char *b, Py_ssize_t p,
                 Py_ssize_t q, Py_ssize_t total, Py_ssize_t *offs, Py_ssize_t *lens)
{
    if (b[p + 4] == 0xFF) {
        malformed(M_SPLIT_ERR);
        return NULL;
    }
    unsigned char *tmp = PyMem_Malloc((size_t)total);
    if (tmp == NULL)
        return PyErr_NoMemory();
    Py_ssize_t w = 0;
    while (p < q) {
        Py_ssize_t part = pkt_len(b + p);
        memcpy(tmp + w, b + p + 4, (size_t)part);
        w += part;
        p += 4 + part;
    }
    PyObject *row = decode_row(self->st, plan, tmp, 0, total, offs, lens);
    PyMem_Free(tmp);
    if (row == NULL && !PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, M_ROW, Py_SIZE(plan));
    return row;
}

/* meta.get(key): a new reference, NULL with an exception, or Py_None
 * (new reference) when missing. */
static PyObject *
meta_lookup(modstate *st, PyObject *meta, PyObject *key)
{
    if (PyDict_CheckExact(meta)) {
        PyObject *v = PyDict_GetItemWithError(meta, key);
        if (v == NULL) {
            if (PyErr_Occurred())
                return NULL;
            v = Py_None;
        }
        Py_INCREF(v);
        return v;
    }
    return PyObject_CallMethodOneArg(meta, st->str_get, key);
}

/* The bytes of the column block b[0..n): the last key built if it is equal
 * (no allocation, hash already known), else a new one remembered for next
 * time.  New reference. */
static PyObject *
block_key(ReaderObject *self, const unsigned char *b, Py_ssize_t n)
{
    PyObject *memo = self->memo_key;
    if (memo != NULL && PyBytes_GET_SIZE(memo) == n && memcmp(PyBytes_AS_STRING(memo), b, (size_t)n) == 0) {
        Py_INCREF(memo);
        return memo;
    }
    PyObject *key = PyBytes_FromStringAndSize((const char *)b, n);
    if (key == NULL)
        return NULL;
    Py_INCREF(key);
    Py_XSETREF(self->memo_key, key);
    return key;
}

/* ------------------------------------------------------------------ feed */

/* The parser behind feed(): returns a status, or -1 with an exception and
 * the reader untouched. */
static int
reader_run(ReaderObject *self, const unsigned char *b, Py_ssize_t p, Py_ssize_t end,
           PyObject *meta, Py_ssize_t limit)
{
    modstate *st = self->st;
    const int unbuffered = self->unbuffered;
    const Py_ssize_t n0 = self->nacc; /* rows held from earlier calls */
    int s = self->seq;
    int phase = self->phase;
    Py_ssize_t field_count = self->field_count;
    PlanObject *plan = self->plan;
    /* what this call found, committed at the end */
    PyObject *shape = NULL, *key = NULL, *error = NULL, *message = NULL, *rows = NULL;
    PlanObject *new_plan = NULL;
    int status = ST_NEED, got_seq = -1, ok_packet = 0, eof_packet = 0;
    Py_ssize_t need = 0, plen;
    unsigned long long affected = 0, insert_id = 0;
    int affected_null = 0, insert_null = 0;
    long server_status = 0, warning_count = 0;
    Py_ssize_t stack_spans[2 * STACK_COLS];
    Py_ssize_t *offs = stack_spans, *lens = stack_spans + STACK_COLS;

    if (phase == PH_FIRST) {
        if (end - p < 4) {
            need = 4;
            goto commit;
        }
        plen = pkt_len(b + p);
        if (b[p + 3] != s) {
            got_seq = b[p + 3];
            status = ST_BAD_SEQ;
            goto commit;
        }
        if (plen == 0) {
            malformed(M_EMPTY);
            goto fail;
        }
        if (plen == MAX_PACKET) {
            PyErr_Format(PyExc_ValueError, M_SPLIT, MAX_PACKET);
            goto fail;
        }
        if (end - p - 4 < plen) {
            need = 4 + plen;
            goto commit;
        }
        Py_ssize_t start = p + 4, stop = start + plen;
        unsigned char first = b[start];
        if (first == 0 && plen >= 7) {
            Py_ssize_t q = start + 1;
            if (read_lenenc(b, &q, stop, &affected, &affected_null, "OK packet") < 0
                || read_lenenc(b, &q, stop, &insert_id, &insert_null, "OK packet") < 0)
                goto fail;
            if (stop - q < 4) {
                malformed(M_OK);
                goto fail;
            }
            server_status = (long)b[q] | ((long)b[q + 1] << 8);
            warning_count = (long)b[q + 2] | ((long)b[q + 3] << 8);
            message = PyBytes_FromStringAndSize((const char *)b + q + 4, stop - q - 4);
            if (message == NULL)
                goto fail;
            ok_packet = 1;
            status = ST_OK;
            p = stop;
            s = (s + 1) & 0xFF;
            goto commit;
        }
        if (first == 0xFF)
            goto err_packet;
        if (first == 0xFB) {
            status = ST_LOCAL_INFILE; /* nothing consumed */
            goto commit;
        }
        unsigned long long count;
        int null;
        Py_ssize_t q = start;
        if (read_lenenc(b, &q, stop, &count, &null, "result-set header") < 0)
            goto fail;
        if (count < 1 || count > MAX_COLUMNS) {
            PyErr_Format(PyExc_ValueError, M_COUNT, count);
            goto fail;
        }
        field_count = (Py_ssize_t)count;
        p = stop;
        s = (s + 1) & 0xFF;
        phase = PH_BLOCK;
    }

    if (phase == PH_BLOCK) {
        /* Scan the column definitions and their EOF; consume them only
         * once all are here and meta knows their key. */
        Py_ssize_t q = p;
        int k = s;
        for (Py_ssize_t i = 0; i <= field_count; i++) {
            if (end - q < 4) {
                need = q + 4 - p;
                goto commit;
            }
            plen = pkt_len(b + q);
            if (b[q + 3] != k) {
                got_seq = b[q + 3];
                status = ST_BAD_SEQ;
                p = q;
                s = k;
                goto commit;
            }
            if (plen == MAX_PACKET) {
                PyErr_Format(PyExc_ValueError, M_SPLIT, MAX_PACKET);
                goto fail;
            }
            if (plen == 0) {
                malformed(M_EMPTY);
                goto fail;
            }
            if (end - q - 4 < plen) {
                need = q + 4 + plen - p;
                goto commit;
            }
            unsigned char first = b[q + 4];
            if (first == 0xFF) {
                p = q;
                s = k;
                goto err_packet;
            }
            int is_eof = first == 0xFE && plen < 9;
            if (i < field_count) {
                if (is_eof) {
                    PyErr_Format(PyExc_ValueError, M_EARLY_EOF, i, field_count);
                    goto fail;
                }
            }
            else if (!is_eof) {
                malformed(M_NO_EOF);
                goto fail;
            }
            q += 4 + plen;
            k = (k + 1) & 0xFF;
        }
        key = block_key(self, b + p, q - p);
        if (key == NULL)
            goto fail;
        PyObject *found = meta_lookup(st, meta, key);
        if (found == NULL)
            goto fail;
        if (found == Py_None) {
            Py_DECREF(found);
            status = ST_META; /* the block stays in the buffer */
            goto commit;
        }
        PyObject *pl = PyObject_GetAttr(found, st->str_plan);
        if (pl == NULL) {
            Py_DECREF(found);
            goto fail;
        }
        if (Py_TYPE(pl) != st->plan_type) {
            Py_DECREF(pl);
            Py_DECREF(found);
            PyErr_SetString(PyExc_TypeError, R_PLAN_MSG);
            goto fail;
        }
        if (Py_SIZE(pl) != field_count) {
            PyErr_Format(PyExc_ValueError, R_NCOLS_MSG, field_count, Py_SIZE(pl));
            Py_DECREF(pl);
            Py_DECREF(found);
            goto fail;
        }
        shape = found;
        plan = new_plan = (PlanObject *)pl;
        p = q;
        s = k;
        phase = PH_ROWS;
        if (unbuffered) {
            status = ST_COLUMNS;
            goto commit;
        }
    }

    /* phase == PH_ROWS */
    Py_ssize_t ncols = Py_SIZE(plan);
    if (ncols > STACK_COLS) {
        if (self->capspans < ncols) {
            Py_ssize_t *nv = PyMem_Resize(self->spans, Py_ssize_t, (size_t)ncols * 2);
            if (nv == NULL) {
                PyErr_NoMemory();
                goto fail;
            }
            self->spans = nv;
            self->capspans = ncols;
        }
        offs = self->spans;
        lens = self->spans + ncols;
    }
    Py_ssize_t decoded = 0;
    for (;;) {
        if (unbuffered && limit && decoded >= limit) {
            status = ST_ROWS;
            break;
        }
        if (end - p < 4) {
            need = 4;
            break;
        }
        plen = pkt_len(b + p);
        if (b[p + 3] != s) {
            if (unbuffered && decoded)
                status = ST_ROWS;
            else {
                got_seq = b[p + 3];
                status = ST_BAD_SEQ;
            }
            break;
        }
        if (plen == 0) {
            malformed(M_EMPTY);
            goto fail;
        }
        PyObject *row;
        if (plen == MAX_PACKET) {
            /* A row split over several packets: every part but the last is
             * 0xFFFFFF bytes long, each carries the next sequence id. */
            Py_ssize_t q = p, total = 0, part;
            int k = s, bad = 0;
            for (;;) {
                if (end - q < 4) {
                    need = q + 4 - p;
                    break;
                }
                part = pkt_len(b + q);
                if (b[q + 3] != k) {
                    bad = 1;
                    break;
                }
                if (end - q - 4 < part) {
                    need = q + 4 + part - p;
                    break;
                }
                total += part;
                q += 4 + part;
                k = (k + 1) & 0xFF;
                if (part < MAX_PACKET)
                    break;
            }
            if (need)
                break;
            if (bad) {
                if (unbuffered && decoded)
                    status = ST_ROWS;
                else {
                    got_seq = b[q + 3];
                    status = ST_BAD_SEQ;
                    p = q;
                    s = k;
                }
                break;
            }
            row = decode_split_row(self, plan, b, p, q, total, offs, lens);
            if (row == NULL || acc_push(self, row) < 0)
                goto fail;
            decoded++;
            p = q;
            s = k;
            continue;
        }
        if (end - p - 4 < plen) {
            need = 4 + plen;
            break;
        }
        unsigned char first = b[p + 4];
        if (first == 0xFF) {
            if (unbuffered && decoded) {
                status = ST_ROWS;
                break;
            }
            goto err_packet;
        }
        if (first == 0xFE && plen < 9) {
            if (unbuffered && decoded) {
                status = ST_ROWS;
                break;
            }
            if (plen < 5) {
                malformed(M_EOF);
                goto fail;
            }
            /* signed, as PyMySQL's EOFPacketWrapper reads them ("<xhh") */
            warning_count = (long)b[p + 5] | ((long)b[p + 6] << 8);
            server_status = (long)b[p + 7] | ((long)b[p + 8] << 8);
            if (warning_count >= 0x8000)
                warning_count -= 0x10000;
            if (server_status >= 0x8000)
                server_status -= 0x10000;
            eof_packet = 1;
            status = unbuffered ? ST_END : ST_RESULT;
            p += 4 + plen;
            s = (s + 1) & 0xFF;
            break;
        }
        row = decode_row(st, plan, b, p + 4, p + 4 + plen, offs, lens);
        if (row == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, M_ROW, ncols);
            goto fail;
        }
        if (acc_push(self, row) < 0)
            goto fail;
        decoded++;
        p += 4 + plen;
        s = (s + 1) & 0xFF;
    }
    if (unbuffered && decoded && status == ST_NEED)
        status = ST_ROWS;
    goto commit;

err_packet:
    /* an ERR packet at p (complete): its payload, and the response ends */
    plen = pkt_len(b + p);
    if (plen < 4) { /* marker, errno, and what pymysql.err reads at [3] */
        malformed(M_ERR);
        goto fail;
    }
    error = PyBytes_FromStringAndSize((const char *)b + p + 4, plen);
    if (error == NULL)
        goto fail;
    status = ST_ERROR;
    p += 4 + plen;
    s = (s + 1) & 0xFF;

commit:
    /* The outcome is certain; only building the rows list can still fail. */
    if (status == ST_ROWS || status == ST_RESULT) {
        rows = acc_take(self, 0);
        if (rows == NULL)
            goto fail;
    }
    else if (status == ST_END) {
        rows = PyList_New(0);
        if (rows == NULL)
            goto fail;
    }
    if (status == ST_ERROR || status == ST_BAD_SEQ)
        acc_drop(self, 0); /* a buffered result's rows are discarded */
    switch (status) {
    case ST_OK: case ST_RESULT: case ST_ERROR: case ST_LOCAL_INFILE: case ST_END: case ST_BAD_SEQ:
        phase = PH_DONE;
        break;
    default:
        break;
    }
    self->pos = p;
    self->seq = s;
    self->phase = (unsigned char)phase;
    self->need = status == ST_NEED ? need : 0;
    self->field_count = field_count;
    if (status == ST_BAD_SEQ)
        self->got_seq = got_seq;
    if (ok_packet) {
        self->affected = affected;
        self->has_affected = !affected_null;
        self->insert_id = insert_id;
        self->has_insert_id = !insert_null;
        Py_XSETREF(self->message, message);
    }
    if (ok_packet || eof_packet) {
        self->server_status = server_status;
        self->warning_count = warning_count;
    }
    if (key != NULL)
        Py_XSETREF(self->meta_key, key);
    if (shape != NULL) {
        Py_XSETREF(self->shape, shape);
        Py_XSETREF(self->plan, new_plan);
    }
    if (error != NULL)
        Py_XSETREF(self->error, error);
    Py_XSETREF(self->rows, rows); /* NULL (None) unless RESULT/ROWS/END */
    if (phase == PH_DONE)
        acc_shrink(self);
    return status;

fail:
    acc_drop(self, n0);
    Py_XDECREF(shape);
    Py_XDECREF(new_plan);
    Py_XDECREF(key);
    Py_XDECREF(error);
    Py_XDECREF(message);
    return -1;
}

static PyObject *
reader_feed(ReaderObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 4 || nargs > 5) {
        PyErr_Format(PyExc_TypeError,
                     "feed() takes from 4 to 5 positional arguments (%zd given)", nargs);
        return NULL;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, R_BUSY_MSG);
        return NULL;
    }
    if (self->phase == PH_IDLE || self->phase == PH_DONE) {
        PyErr_SetString(PyExc_RuntimeError, self->phase == PH_IDLE ? R_IDLE_MSG : R_DONE_MSG);
        return NULL;
    }
    Py_buffer view;
    if (get_buffer(args[0], &view, R_BUF_MSG, R_CONTIG_MSG) < 0)
        return NULL;
    int status = -1;
    Py_ssize_t pos, end, limit = 0;
    if (index_arg(args[1], &pos) < 0 || index_arg(args[2], &end) < 0
        || (nargs == 5 && index_value(args[4], &limit, PY_SSIZE_T_MAX) < 0))
        goto done;
    if (pos < 0 || end < 0 || pos > end || end > view.len) {
        PyErr_SetString(PyExc_ValueError, R_ARGS_MSG);
        goto done;
    }
    if (limit < 0) {
        PyErr_SetString(PyExc_ValueError, R_LIMIT_MSG);
        goto done;
    }
    if (!PyDict_Check(args[3])) {
        PyErr_Format(PyExc_TypeError, R_META_MSG, Py_TYPE(args[3])->tp_name);
        goto done;
    }
    /* The export is held while converters run: a converter cannot resize
     * the caller's bytearray under us (BufferError, as in the pure twin). */
    self->busy = 1;
    status = reader_run(self, (const unsigned char *)view.buf, pos, end, args[3], limit);
    self->busy = 0;
done:
    PyBuffer_Release(&view);
    if (status < 0)
        return NULL;
    return PyLong_FromLong(status);
}

/* ----------------------------------------------------------------- start */

/* Drops every reference held for the current response. */
static void
reader_drop_response(ReaderObject *self)
{
    Py_CLEAR(self->message);
    Py_CLEAR(self->shape);
    Py_CLEAR(self->meta_key);
    Py_CLEAR(self->rows);
    Py_CLEAR(self->error);
    Py_CLEAR(self->plan);
    acc_drop(self, 0);
}

/* Drops what the previous response left (the caller sets busy). */
static void
reader_reset(ReaderObject *self, int seq)
{
    self->phase = PH_IDLE;
    self->pos = 0;
    self->seq = seq;
    self->need = 0;
    self->field_count = 0;
    self->has_affected = self->has_insert_id = 0;
    self->affected = self->insert_id = 0;
    self->server_status = self->warning_count = 0;
    self->got_seq = -1;
    reader_drop_response(self);
    acc_shrink(self);
}

static PyObject *
reader_start(ReaderObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError,
                     "start() takes from 1 to 2 positional arguments (%zd given)", nargs);
        return NULL;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, R_BUSY_MSG);
        return NULL;
    }
    Py_ssize_t seq;
    if (index_arg(args[0], &seq) < 0)
        return NULL;
    if (seq < 0 || seq > 255) {
        PyErr_SetString(PyExc_ValueError, R_SEQ_MSG);
        return NULL;
    }
    int unbuffered = nargs == 2 ? PyObject_IsTrue(args[1]) : 0;
    if (unbuffered < 0)
        return NULL;
    /* Freeing the old rows may run arbitrary __del__ code: no re-entry. */
    self->busy = 1;
    reader_reset(self, (int)seq);
    self->busy = 0;
    self->unbuffered = (unsigned char)unbuffered;
    self->phase = PH_FIRST;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------- type */

static PyObject *
reader_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "ResponseReader() takes no arguments");
        return NULL;
    }
    ReaderObject *self = (ReaderObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->st = (modstate *)PyType_GetModuleState(type);
    if (self->st == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->got_seq = -1;
    return (PyObject *)self;
}

static int
reader_traverse(ReaderObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->shape);
    Py_VISIT(self->rows);
    Py_VISIT(self->plan);
    for (Py_ssize_t k = 0; k < self->nacc; k++)
        Py_VISIT(self->acc[k]);
    return 0;
}

static int
reader_clear(ReaderObject *self)
{
    reader_drop_response(self);
    Py_CLEAR(self->memo_key);
    return 0;
}

static void
reader_dealloc(ReaderObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    reader_clear(self);
    PyMem_Free(self->acc);
    PyMem_Free(self->spans);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *
obj_or_none(PyObject *v)
{
    if (v == NULL)
        Py_RETURN_NONE;
    Py_INCREF(v);
    return v;
}

static PyObject *
reader_get_affected(ReaderObject *self, void *c)
{
    if (!self->has_affected)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(self->affected);
}

static PyObject *
reader_get_insert_id(ReaderObject *self, void *c)
{
    if (!self->has_insert_id)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(self->insert_id);
}

static PyObject *
reader_get_message(ReaderObject *self, void *c)
{
    if (self->message == NULL)
        return PyBytes_FromStringAndSize(NULL, 0);
    Py_INCREF(self->message);
    return self->message;
}

static PyObject *reader_get_shape(ReaderObject *self, void *c) { return obj_or_none(self->shape); }
static PyObject *reader_get_meta_key(ReaderObject *self, void *c) { return obj_or_none(self->meta_key); }
static PyObject *reader_get_rows(ReaderObject *self, void *c) { return obj_or_none(self->rows); }
static PyObject *reader_get_error(ReaderObject *self, void *c) { return obj_or_none(self->error); }

static PyMemberDef reader_members[] = {
    {"pos", T_PYSSIZET, offsetof(ReaderObject, pos), READONLY,
     "Where the last feed() stopped consuming."},
    {"seq", T_INT, offsetof(ReaderObject, seq), READONLY,
     "The sequence id the packet at pos must carry."},
    {"need", T_PYSSIZET, offsetof(ReaderObject, need), READONLY,
     "After NEED: bytes needed from pos before progress is possible."},
    {"field_count", T_PYSSIZET, offsetof(ReaderObject, field_count), READONLY,
     "Number of columns of the current result set (0 before its header)."},
    {"server_status", T_LONG, offsetof(ReaderObject, server_status), READONLY,
     "From the OK packet (unsigned) or the EOF ending a result (signed)."},
    {"warning_count", T_LONG, offsetof(ReaderObject, warning_count), READONLY,
     "From the OK packet (unsigned) or the EOF ending a result (signed)."},
    {"got_seq", T_INT, offsetof(ReaderObject, got_seq), READONLY,
     "BAD_SEQ: the sequence id found (-1 otherwise)."},
    {NULL}
};

static PyGetSetDef reader_getset[] = {
    {"affected_rows", (getter)reader_get_affected, NULL,
     "OK packet: affected rows (None for a 0xFB NULL, or without an OK packet).", NULL},
    {"insert_id", (getter)reader_get_insert_id, NULL,
     "OK packet: last insert id (None for a 0xFB NULL, or without an OK packet).", NULL},
    {"message", (getter)reader_get_message, NULL,
     "OK packet: every byte after the warning count; b'' otherwise.", NULL},
    {"shape", (getter)reader_get_shape, NULL, "meta[meta_key] of the current result set.", NULL},
    {"meta_key", (getter)reader_get_meta_key, NULL,
     "Raw bytes of the current result's column-definition block, once keyed.", NULL},
    {"rows", (getter)reader_get_rows, NULL,
     "RESULT: every row; ROWS/END: the rows of that call; else None.", NULL},
    {"error", (getter)reader_get_error, NULL, "ERROR: the ERR packet's payload.", NULL},
    {NULL}
};

PyDoc_STRVAR(reader_start_doc,
"start(seq, unbuffered=False, /)\n--\n\n"
"Begin a new response whose first packet carries sequence id seq; drop every\n"
"reference held for the previous one.");

PyDoc_STRVAR(reader_feed_doc,
"feed(buf, pos, end, meta, limit=0, /)\n--\n\n"
"Consume the complete packets of this response in buf[pos:end] and return a\n"
"status (NEED, OK, RESULT, ERROR, META, LOCAL_INFILE, COLUMNS, ROWS, END,\n"
"BAD_SEQ); see docs/codec.md.");

static PyMethodDef reader_methods[] = {
    {"start", (PyCFunction)(void (*)(void))reader_start, METH_FASTCALL, reader_start_doc},
    {"feed", (PyCFunction)(void (*)(void))reader_feed, METH_FASTCALL, reader_feed_doc},
    {NULL, NULL, 0, NULL}
};

static PyType_Slot reader_slots[] = {
    {Py_tp_doc, "Incremental parser of one command's response; one per connection, reusable."},
    {Py_tp_new, reader_new},
    {Py_tp_dealloc, reader_dealloc},
    {Py_tp_traverse, reader_traverse},
    {Py_tp_clear, reader_clear},
    {Py_tp_methods, reader_methods},
    {Py_tp_members, reader_members},
    {Py_tp_getset, reader_getset},
    {0, NULL}
};

static PyType_Spec reader_spec = {
    .name = "tornpool.codec._speedups.ResponseReader",
    .basicsize = sizeof(ReaderObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = reader_slots,
};

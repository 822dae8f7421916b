/*
 * ResponseReader, 1/3: statuses, messages, the reader object, its row store
 * and the packet-part helpers of the parser (see _reader.h).
 *
 * Part of tornpool.codec._speedups: included once by _speedups.c, which is
 * compiled as one translation unit; not a standalone header.
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

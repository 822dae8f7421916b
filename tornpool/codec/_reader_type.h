/*
 * ResponseReader, 3/3: start(), the type (allocation, GC, attributes).
 * See _reader.h.
 *
 * Part of tornpool.codec._speedups: included once by _speedups.c, which is
 * compiled as one translation unit; not a standalone header.
 */

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

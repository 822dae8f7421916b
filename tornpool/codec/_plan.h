/*
 * Plan: per-column (encoding, converter) kinds, built by make_plan().
 *
 * Part of tornpool.codec._speedups: included once by _speedups.c, which is
 * compiled as one translation unit (so the hot loops inline across the
 * parts); not a standalone header.
 */

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

static const char PAIR_MSG[] =
    "make_plan() needs a sequence of (encoding, converter) pairs; item %zd is not one";
static const char SEQ_TYPE_MSG[] = "make_plan() needs a list or tuple of (encoding, converter) pairs";

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

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
 * The source is split by concern into files this one includes, in order
 * (one translation unit, so the per-value parsers inline into the row loops):
 *
 *   _plan.h     column kinds and the Plan type (make_plan)
 *   _numbers.h  strict parsers: int, float (Clinger / Eisel-Lemire), dates
 *   _text.h     text decoding exactly as bytes.decode() does it
 *   _rows.h     one row payload -> tuple; decode_rows()
 *   _reader_state.h, _reader.h, _reader_type.h
 *               ResponseReader: a whole text-protocol response, incrementally
 *               (its object and helpers; the parser and feed(); start() and the type)
 *   _command.h  build_command(): a command's packets as PyMySQL writes them
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

/* ------------------------------------------------------------ module state */

typedef struct {
    PyTypeObject *plan_type;
    PyTypeObject *reader_type;
    PyObject *str_plan;   /* "plan" */
    PyObject *str_get;    /* "get" */
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

#include "_plan.h"
#include "_numbers.h"
#include "_text.h"
#include "_rows.h"
#include "_reader_state.h"
#include "_reader.h"
#include "_reader_type.h"
#include "_command.h"

/* ---------------------------------------------------------------- module */

PyDoc_STRVAR(make_plan_doc,
"make_plan(converters, /) -> Plan\n\n"
"Build a decoding plan from PyMySQL's MySQLResult.converters list.");

PyDoc_STRVAR(decode_rows_doc,
"decode_rows(buf, pos, end, seq, plan, /) -> (rows, new_pos, new_seq)\n\n"
"Decode the complete text-protocol row packets in buf[pos:end]; stop before\n"
"the first packet that is incomplete, multi-packet, out of sequence, EOF/OK,\n"
"ERR or malformed.");

PyDoc_STRVAR(build_command_doc,
"build_command(command, payload, /) -> (bytes, response_seq)\n\n"
"The packets PyMySQL's Connection._execute_command(command, payload) writes,\n"
"and the sequence id the response's first packet must carry.");

static PyMethodDef module_methods[] = {
    {"build_command", (PyCFunction)(void (*)(void))build_command, METH_FASTCALL, build_command_doc},
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
    st->reader_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &reader_spec, NULL);
    if (st->reader_type == NULL)
        return -1;
    if (PyModule_AddObjectRef(module, "ResponseReader", (PyObject *)st->reader_type) < 0)
        return -1;
    for (int i = ST_NEED; i <= ST_BAD_SEQ; i++) {
        if (PyModule_AddIntConstant(module, status_names[i], i) < 0)
            return -1;
    }
    if ((st->str_plan = PyUnicode_InternFromString("plan")) == NULL
        || (st->str_get = PyUnicode_InternFromString("get")) == NULL)
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
    Py_VISIT(st->reader_type);
    Py_VISIT(st->str_plan);
    Py_VISIT(st->str_get);
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
    Py_CLEAR(st->reader_type);
    Py_CLEAR(st->str_plan);
    Py_CLEAR(st->str_get);
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
    .m_doc = "C twin of tornpool.codec._pure and _pure_reader: MySQL text-protocol responses and rows.",
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

/*
 * build_command(): the packets of one client command, exactly as PyMySQL's
 * Connection._execute_command writes them.  Twin of build_command in
 * tornpool/codec/_pure_reader.py.
 *
 * Part of tornpool.codec._speedups: included once by _speedups.c, which is
 * compiled as one translation unit; not a standalone header.
 */

static const char CMD_MSG[] = "build_command() needs 0 <= command <= 255";
static const char CMD_BUF_MSG[] =
    "build_command() argument 'payload' must be a bytes-like object, not '%.200s'";
static const char CMD_CONTIG_MSG[] = "build_command() needs a C-contiguous payload";

/* The command byte and the payload, split into packets of at most
 * 0xFFFFFF bytes with sequence ids 0, 1, ...; when the last one is exactly
 * 0xFFFFFF long an empty packet follows (PyMySQL sends it, and the server
 * waits for it).  Returns (bytes, sequence id of the response). */
static PyObject *
build_command(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "build_command() takes exactly 2 positional arguments (%zd given)", nargs);
        return NULL;
    }
    Py_ssize_t command;
    if (index_arg(args[0], &command) < 0)
        return NULL;
    if (command < 0 || command > 255) {
        PyErr_SetString(PyExc_ValueError, CMD_MSG);
        return NULL;
    }
    Py_buffer view;
    if (get_buffer(args[1], &view, CMD_BUF_MSG, CMD_CONTIG_MSG) < 0)
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t body = view.len + 1; /* the command byte, then the payload */
    Py_ssize_t npackets = body / MAX_PACKET + 1;
    if (body > PY_SSIZE_T_MAX - 4 * npackets) {
        PyErr_NoMemory();
        goto done;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, body + 4 * npackets);
    if (out == NULL)
        goto done;
    unsigned char *w = (unsigned char *)PyBytes_AS_STRING(out);
    const unsigned char *src = (const unsigned char *)view.buf;
    Py_ssize_t left = body, copied = 0; /* bytes of the body written so far */
    for (Py_ssize_t k = 0; k < npackets; k++) {
        Py_ssize_t size = left < MAX_PACKET ? left : MAX_PACKET;
        w[0] = (unsigned char)(size & 0xFF);
        w[1] = (unsigned char)((size >> 8) & 0xFF);
        w[2] = (unsigned char)((size >> 16) & 0xFF);
        w[3] = (unsigned char)(k & 0xFF);
        w += 4;
        Py_ssize_t i = 0;
        if (copied == 0 && size > 0) {
            *w++ = (unsigned char)command;
            i = 1;
        }
        if (size > i)
            memcpy(w, src + (copied + i - 1), (size_t)(size - i));
        w += size - i;
        copied += size;
        left -= size;
    }
    result = Py_BuildValue("(Nn)", out, npackets & 0xFF);
done:
    PyBuffer_Release(&view);
    return result;
}

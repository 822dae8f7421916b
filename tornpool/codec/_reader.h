/*
 * ResponseReader, 2/3: the parser and feed().
 *
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

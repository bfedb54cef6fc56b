/* influxhtm._decode: result rows of InfluxDB into instances of a declared class, in C.
 *
 * The optional fast path of `rows.objects_of` (the reference is the generated Python row mapper of
 * rows.py; a test makes both agree on generated rows). One call turns the `values` of one series
 * (a list of rows, each a list as msgpack or JSON decoded it) into a list of instances: the object is
 * allocated as `object.__new__(cls)` does and each attribute is stored in its slot, the time
 * (integer nanoseconds) becoming an aware UTC datetime with the microseconds floored, as
 * `EPOCH + timedelta(microseconds=ns // 1000)` does.
 *
 * A row the C path does not handle exactly (a time that is not an int64, a float field holding
 * something else than a float, an int or None, an unknown enum value, a row of the wrong length) is
 * handed to the Python mapper, which converts it or raises the error that names the value.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <structmember.h>

#ifndef Py_T_OBJECT_EX /* before Python 3.12 */
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_READONLY READONLY
#endif

#define MAX_COLUMNS 256

enum { PLAIN = 'p', TIME = 't', FLOAT = 'f', ENUM = 'e', CONSTANT = 'c' };

typedef struct {
    Py_ssize_t offset; /* the slot of the attribute */
    int code;          /* PLAIN, TIME, FLOAT, ENUM: from row[index]; CONSTANT: `constant` */
    Py_ssize_t index;
    PyObject *lookup;  /* ENUM: dict value -> member (borrowed) */
    PyObject *constant; /* CONSTANT (borrowed) */
} Column;

/* Where instances of `cls` keep `attr`: the offset of its slot, or -1 (not a plain object slot). */
static Py_ssize_t slot_offset(PyTypeObject *cls, PyObject *attr) {
    PyObject *descr = PyObject_GetAttr((PyObject *)cls, attr);
    if (!descr) { PyErr_Clear(); return -1; }
    Py_ssize_t offset = -1;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type) && PyType_IsSubtype(cls, ((PyDescrObject *)descr)->d_type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == Py_T_OBJECT_EX && !(member->flags & Py_READONLY)) offset = member->offset;
    }
    Py_DECREF(descr);
    return offset;
}

/* Year, month and day of `days` since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm). */
static void civil_from_days(long long days, int *y, int *m, int *d) {
    days += 719468;
    long long era = (days >= 0 ? days : days - 146096) / 146097;
    long long doe = days - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static long long floor_div(long long a, long long b) {
    long long q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* The aware datetime of integer nanoseconds `value`, or NULL with no error set (use Python). */
static PyObject *time_of(PyObject *value, PyObject *tz) {
    if (!PyLong_CheckExact(value)) return NULL;
    int overflow = 0;
    long long ns = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (ns == -1 && PyErr_Occurred())) { PyErr_Clear(); return NULL; }
    long long us = floor_div(ns, 1000);
    long long days = floor_div(us, 86400000000LL);
    long long rest = us - days * 86400000000LL;
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 1 || y > 9999) return NULL;
    int second_of_day = (int)(rest / 1000000);
    return PyDateTimeAPI->DateTime_FromDateAndTime(y, m, d, second_of_day / 3600, second_of_day / 60 % 60,
                                                   second_of_day % 60, (int)(rest % 1000000), tz,
                                                   PyDateTimeAPI->DateTimeType);
}

/* The attribute value of one column of `row` (a new reference), or NULL with no error set (use
 * Python), or NULL with an error set (fail). */
static PyObject *value_of(Column *c, PyObject *row, PyObject *tz) {
    if (c->code == CONSTANT) return Py_NewRef(c->constant);
    PyObject *v = PyList_GET_ITEM(row, c->index);
    switch (c->code) {
    case TIME:
        return time_of(v, tz);
    case FLOAT:
        if (v == Py_None || PyFloat_CheckExact(v)) return Py_NewRef(v);
        if (PyLong_CheckExact(v)) {
            double x = PyLong_AsDouble(v);
            if (x == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return NULL; }
            return PyFloat_FromDouble(x);
        }
        return NULL;
    case ENUM: {
        if (v == Py_None) return Py_NewRef(v);
        PyObject *member = PyDict_GetItemWithError(c->lookup, v);
        if (!member) { PyErr_Clear(); return NULL; }
        return Py_NewRef(member);
    }
    default:
        return Py_NewRef(v);
    }
}

/* One instance of `cls` from `row`, or NULL with no error set (use Python), or NULL with an error. */
static PyObject *build(PyTypeObject *cls, Column *cols, Py_ssize_t n, Py_ssize_t width, PyObject *row,
                       PyObject *tz) {
    if (!PyList_CheckExact(row) || PyList_GET_SIZE(row) != width) return NULL;
    PyObject *obj = cls->tp_alloc(cls, 0);
    if (!obj) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = value_of(&cols[i], row, tz);
        if (!value) { Py_DECREF(obj); return NULL; }
        PyObject **slot = (PyObject **)((char *)obj + cols[i].offset);
        Py_XSETREF(*slot, value);
    }
    return obj;
}

static int parse_plan(PyTypeObject *cls, PyObject *plan, Py_ssize_t width, Column *cols, Py_ssize_t *n) {
    if (!PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) > MAX_COLUMNS) return 0;
    *n = PyTuple_GET_SIZE(plan);
    for (Py_ssize_t i = 0; i < *n; i++) {
        PyObject *item = PyTuple_GET_ITEM(plan, i);
        PyObject *attr, *code, *arg, *lookup;
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "UUOO", &attr, &code, &arg, &lookup)) {
            PyErr_Clear();
            return 0;
        }
        if (PyUnicode_GET_LENGTH(code) != 1) return 0;
        Column *c = &cols[i];
        c->offset = slot_offset(cls, attr);
        c->code = PyUnicode_READ_CHAR(code, 0);
        c->lookup = lookup;
        c->constant = arg;
        c->index = 0;
        if (c->offset < 0) return 0;
        if (c->code != CONSTANT) {
            c->index = PyLong_AsSsize_t(arg);
            if (c->index < 0 || c->index >= width) { PyErr_Clear(); return 0; }
        }
        if (c->code == ENUM && !PyDict_CheckExact(lookup)) return 0;
    }
    return 1;
}

/* build_objects(cls, plan, width, rows, tz, fallback) -> list | None */
static PyObject *build_objects(PyObject *self, PyObject *args) {
    PyObject *cls_obj, *plan, *rows, *tz, *fallback;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "OOnOOO", &cls_obj, &plan, &width, &rows, &tz, &fallback)) return NULL;
    if (!PyType_Check(cls_obj) || !PyList_CheckExact(rows)) Py_RETURN_NONE;
    PyTypeObject *cls = (PyTypeObject *)cls_obj;
    Column cols[MAX_COLUMNS];
    Py_ssize_t n;
    if (!parse_plan(cls, plan, width, cols, &n)) Py_RETURN_NONE;
    Py_ssize_t count = PyList_GET_SIZE(rows);
    PyObject *out = PyList_New(count);
    if (!out) return NULL;
    /* Every instance is a GC-tracked object: without the pause the collector would run over the
     * growing list again and again (it doubles the time, or worse). */
    int collecting = PyGC_Disable();
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        PyObject *obj = build(cls, cols, n, width, row, tz);
        if (!obj && !PyErr_Occurred()) obj = PyObject_CallOneArg(fallback, row);
        if (!obj) {
            Py_SET_SIZE(out, i); /* the rest is still NULL */
            Py_DECREF(out);
            out = NULL;
            break;
        }
        PyList_SET_ITEM(out, i, obj);
    }
    if (collecting) PyGC_Enable();
    return out;
}

static PyMethodDef methods[] = {
    {"build_objects", build_objects, METH_VARARGS,
     "build_objects(cls, plan, width, rows, tz, fallback) -> list | None: instances of rows, or None "
     "(use Python)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "influxhtm._decode",
                                    "Optional C row decoder (see rows.py).", -1, methods};

PyMODINIT_FUNC PyInit__decode(void) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI) return NULL;
    return PyModule_Create(&module);
}

/* The pad statistics' sums of one hidden state in one pass over it (padlens.inspector.stats.fused).
 *
 * For each row h_t of a float32 state [B, T, H], read once while it is in the cache: ||h_t||^2, h_t . h_anchor,
 * ||h_t - h_{t-1}||^2 (row 0: ||h_0||^2), and h_t / max(||h_t||, FLT_MIN) added to the sequence's pad or real
 * sum, h_t added to its position's pad sum; optionally the last layer's pooled sums (real, all, pad, first real).
 * Every product and sum is taken in float64. No NumPy C API: buffers come through the buffer protocol, and the
 * GIL is released while the rows are read, so several threads can each take some of a batch's layers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const float *x;
    const uint8_t *pad;
    const int64_t *anchor, *first;
    Py_ssize_t b0, b1, T, H;
    double *sq, *dots, *steps, *sums, *positions, *text;
} Job;

static inline double row_dot(const float *a, const float *b, Py_ssize_t n) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (Py_ssize_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

static inline double row_step(const float *a, const float *b, Py_ssize_t n) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (Py_ssize_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return s;
}

static inline void add_scaled(double *out, const float *row, double w, Py_ssize_t n) {
#pragma omp simd
    for (Py_ssize_t i = 0; i < n; i++) out[i] += (double)row[i] * w;
}

/* one build runs the best of these the processor has (GCC's function clones, chosen when the module loads) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define CLONES
#endif

CLONES static void run(const Job *j) {
    const Py_ssize_t T = j->T, H = j->H;
    memset(j->positions, 0, T * H * sizeof(double));
    for (Py_ssize_t b = j->b0; b < j->b1; b++) {
        const float *xb = j->x + b * T * H;
        const uint8_t *pad = j->pad + b * T;
        const float *anchor = xb + j->anchor[b] * H;
        double *pad_sum = j->sums + b * 3 * H, *real_sum = pad_sum + H, *anchor_row = real_sum + H;
        double *text = j->text ? j->text + b * 4 * H : NULL; /* rows: real, all, pad, first real */
        memset(pad_sum, 0, 3 * H * sizeof(double));
        if (text) memset(text, 0, 4 * H * sizeof(double));
        for (Py_ssize_t i = 0; i < H; i++) anchor_row[i] = anchor[i];
        for (Py_ssize_t t = 0; t < T; t++) {
            const float *row = xb + t * H;
            double sq = row_dot(row, row, H);
            j->sq[b * T + t] = sq;
            j->dots[b * T + t] = row_dot(row, anchor, H);
            j->steps[b * T + t] = t ? row_step(row, row - H, H) : sq;
            double norm = sqrt(sq);
            double inv = 1.0 / (norm > FLT_MIN ? norm : FLT_MIN); /* a zero state: no direction, adds 0 */
            if (pad[t]) {
                add_scaled(pad_sum, row, inv, H);
                add_scaled(j->positions + t * H, row, 1.0, H);
            } else {
                add_scaled(real_sum, row, inv, H);
            }
            if (text) {
                add_scaled(text + (pad[t] ? 2 : 0) * H, row, 1.0, H);
                add_scaled(text + H, row, 1.0, H);
                if (t == j->first[b]) add_scaled(text + 3 * H, row, 1.0, H);
            }
        }
    }
}

/* buffers held for one call, released together */
typedef struct {
    Py_buffer v[10]; /* every argument that is a buffer */
    int n;
} Held;

static void release(Held *held) {
    for (int i = 0; i < held->n; i++) PyBuffer_Release(&held->v[i]);
    held->n = 0;
}

/* obj's C-contiguous buffer of `count` items of `itemsize` bytes, kinds as in the struct format `kinds`
   (writable for an output); NULL with an exception set otherwise */
static void *take(Held *held, PyObject *obj, const char *what, const char *kinds, Py_ssize_t itemsize,
                  Py_ssize_t count, int writable) {
    Py_buffer *view = &held->v[held->n];
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return NULL;
    held->n++;
    const char *format = view->format ? view->format : "B";
    if (*format == '<' || *format == '=' || *format == '@') format++;
    if (view->itemsize != itemsize || strlen(format) != 1 || !strchr(kinds, *format)) {
        PyErr_Format(PyExc_TypeError, "%s: items of format '%s' and %zd bytes", what, view->format, view->itemsize);
        return NULL;
    }
    if (view->len != count * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: %zd items where %zd are needed", what, view->len / itemsize, count);
        return NULL;
    }
    return view->buf;
}

PyDoc_STRVAR(layer_doc,
"layer(x, pad, anchor, first, b0, b1, sq, dots, steps, sums, positions, text)\n--\n\n"
"Sums of sequences b0..b1-1 of the float32 state x [B, T, H]: sq, dots, steps [B, T]; sums [B, 3, H] (pad and\n"
"real sums of unit rows, the anchor row); positions [T, H]: their pad rows summed; text [B, 4, H] (or None).\n"
"pad: uint8 [B, T]; anchor, first: int64 [B]. Outputs are float64, written in place.");

static PyObject *layer(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *ox, *opad, *oanchor, *ofirst, *osq, *odots, *osteps, *osums, *opos, *otext;
    Py_ssize_t b0, b1;
    if (!PyArg_ParseTuple(args, "OOOOnnOOOOOO", &ox, &opad, &oanchor, &ofirst, &b0, &b1, &osq, &odots, &osteps,
                          &osums, &opos, &otext))
        return NULL;
    Held held = {.n = 0};
    Job j;
    Py_buffer probe;
    if (PyObject_GetBuffer(ox, &probe, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    if (probe.ndim != 3) {
        PyBuffer_Release(&probe);
        PyErr_SetString(PyExc_ValueError, "x: a state [B, T, H] is needed");
        return NULL;
    }
    Py_ssize_t B = probe.shape[0], T = probe.shape[1], H = probe.shape[2];
    PyBuffer_Release(&probe);
    if (b0 < 0 || b1 > B || b0 > b1) {
        PyErr_Format(PyExc_ValueError, "sequences %zd..%zd of %zd", b0, b1, B);
        return NULL;
    }
    j.b0 = b0, j.b1 = b1, j.T = T, j.H = H;
    if (!(j.x = take(&held, ox, "x", "f", 4, B * T * H, 0)) ||
        !(j.pad = take(&held, opad, "pad", "B?", 1, B * T, 0)) ||
        !(j.anchor = take(&held, oanchor, "anchor", "lq", 8, B, 0)) ||
        !(j.first = take(&held, ofirst, "first", "lq", 8, B, 0)) ||
        !(j.sq = take(&held, osq, "sq", "d", 8, B * T, 1)) ||
        !(j.dots = take(&held, odots, "dots", "d", 8, B * T, 1)) ||
        !(j.steps = take(&held, osteps, "steps", "d", 8, B * T, 1)) ||
        !(j.sums = take(&held, osums, "sums", "d", 8, B * 3 * H, 1)) ||
        !(j.positions = take(&held, opos, "positions", "d", 8, T * H, 1))) {
        release(&held);
        return NULL;
    }
    j.text = NULL;
    if (otext != Py_None && !(j.text = take(&held, otext, "text", "d", 8, B * 4 * H, 1))) {
        release(&held);
        return NULL;
    }
    for (Py_ssize_t b = b0; b < b1; b++) {
        if (j.anchor[b] < 0 || j.anchor[b] >= T || j.first[b] < 0 || j.first[b] >= T) {
            release(&held);
            PyErr_Format(PyExc_ValueError, "sequence %zd: anchor or first position out of 0..%zd", b, T - 1);
            return NULL;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    run(&j);
    Py_END_ALLOW_THREADS
    release(&held);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"layer", layer, METH_VARARGS, layer_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fused", "One pass over a hidden state for the pad statistics' sums.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fused(void) { return PyModule_Create(&module); }

/* pytest_perfgate.counts._native: callgrind client requests and an allocation counter.
 *
 * Client requests (valgrind/callgrind.h) are compiled in only when the header is found at build
 * time; have_client_requests() says whether they were. The allocation counter needs no header.
 *
 * Allocation counter: alloc_start() installs wrappers around the RAW, MEM and OBJ allocator domains
 * (PyMem_GetAllocator/PyMem_SetAllocator); every malloc, calloc and realloc call made through
 * them until alloc_stop() adds one block and the bytes requested (calloc: nelem * elsize;
 * realloc: the new size). Frees are not counted. The wrappers count in every thread: MEM and
 * OBJ are called with the GIL held; RAW may be called without it, so all counters are updated
 * with atomic additions.
 *
 * No double counting: pymalloc serves requests over 512 bytes from the RAW domain (and debug hooks
 * may call through too); a RAW call made while the same thread is inside a counted MEM/OBJ call is
 * not counted again (a thread-local depth).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#if defined(__has_include) && !defined(PERFGATE_NO_CLIENT_REQUESTS)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define PERFGATE_HAVE_CLIENT_REQUESTS 1
#endif
#endif
#ifndef PERFGATE_HAVE_CLIENT_REQUESTS
#define PERFGATE_HAVE_CLIENT_REQUESTS 0
#endif

#if defined(_MSC_VER)
#define THREAD_LOCAL __declspec(thread)
#else
#define THREAD_LOCAL _Thread_local
#endif

#if defined(__GNUC__) || defined(__clang__)
#define ATOMIC_ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#else
#define ATOMIC_ADD(p, v) (*(p) += (v))
#endif

/* ---------------------------------------------------------------- client requests */

#if !PERFGATE_HAVE_CLIENT_REQUESTS
static PyObject *
no_client_requests(void)
{
    PyErr_SetString(PyExc_RuntimeError,
                    "pytest_perfgate.counts._native was built without valgrind's headers "
                    "(valgrind/callgrind.h): install valgrind (Debian: apt-get install valgrind) "
                    "and reinstall pytest-perfgate to build it with them");
    return NULL;
}
#endif

static PyObject *
have_client_requests(PyObject *self, PyObject *unused)
{
    return PyLong_FromLong(PERFGATE_HAVE_CLIENT_REQUESTS);
}

static PyObject *
running_on_valgrind(PyObject *self, PyObject *unused)
{
#if PERFGATE_HAVE_CLIENT_REQUESTS
    return PyLong_FromLong((long)RUNNING_ON_VALGRIND);
#else
    return PyLong_FromLong(0);
#endif
}

static PyObject *
start_instrumentation(PyObject *self, PyObject *unused)
{
#if PERFGATE_HAVE_CLIENT_REQUESTS
    CALLGRIND_START_INSTRUMENTATION;
    Py_RETURN_NONE;
#else
    return no_client_requests();
#endif
}

static PyObject *
stop_instrumentation(PyObject *self, PyObject *unused)
{
#if PERFGATE_HAVE_CLIENT_REQUESTS
    CALLGRIND_STOP_INSTRUMENTATION;
    Py_RETURN_NONE;
#else
    return no_client_requests();
#endif
}

static PyObject *
toggle_collect(PyObject *self, PyObject *unused)
{
#if PERFGATE_HAVE_CLIENT_REQUESTS
    CALLGRIND_TOGGLE_COLLECT;
    Py_RETURN_NONE;
#else
    return no_client_requests();
#endif
}

static PyObject *
zero_stats(PyObject *self, PyObject *unused)
{
#if PERFGATE_HAVE_CLIENT_REQUESTS
    CALLGRIND_ZERO_STATS;
    Py_RETURN_NONE;
#else
    return no_client_requests();
#endif
}

static PyObject *
dump_stats(PyObject *self, PyObject *arg)
{
#if PERFGATE_HAVE_CLIENT_REQUESTS
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL) {
        return NULL;
    }
    CALLGRIND_DUMP_STATS_AT(name);
    Py_RETURN_NONE;
#else
    return no_client_requests();
#endif
}

/* ---------------------------------------------------------------- allocation counter */

typedef struct {
    PyMemAllocatorEx base; /* the allocator we wrap */
    PyMemAllocatorDomain domain;
    int active; /* counts only while active: a wrapper left in a chain (see alloc_stop) only forwards */
} wrapped_t;

static const PyMemAllocatorDomain DOMAINS[3] = {PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};
/* the wrappers installed by alloc_start, one per domain; NULL when not counting. Each start
   makes new ones: a wrapper another hook kept a pointer to must never be reused (it would end up
   wrapping itself) */
static wrapped_t *installed[3] = {NULL, NULL, NULL};
static uint64_t n_blocks = 0;
static uint64_t n_bytes = 0;
static THREAD_LOCAL int depth = 0; /* > 0: inside a counted call of this thread */

static inline int
should_count(wrapped_t *w)
{
    return w->active && (w->domain != PYMEM_DOMAIN_RAW || depth == 0);
}

static void *
count_malloc(void *ctx, size_t size)
{
    wrapped_t *w = (wrapped_t *)ctx;
    if (should_count(w)) {
        ATOMIC_ADD(&n_blocks, 1);
        ATOMIC_ADD(&n_bytes, (uint64_t)size);
    }
    void *result;
    depth++;
    result = w->base.malloc(w->base.ctx, size);
    depth--;
    return result;
}

static void *
count_calloc(void *ctx, size_t nelem, size_t elsize)
{
    wrapped_t *w = (wrapped_t *)ctx;
    if (should_count(w)) {
        ATOMIC_ADD(&n_blocks, 1);
        ATOMIC_ADD(&n_bytes, (uint64_t)nelem * (uint64_t)elsize);
    }
    void *result;
    depth++;
    result = w->base.calloc(w->base.ctx, nelem, elsize);
    depth--;
    return result;
}

static void *
count_realloc(void *ctx, void *ptr, size_t new_size)
{
    wrapped_t *w = (wrapped_t *)ctx;
    if (should_count(w)) {
        ATOMIC_ADD(&n_blocks, 1);
        ATOMIC_ADD(&n_bytes, (uint64_t)new_size);
    }
    void *result;
    depth++;
    result = w->base.realloc(w->base.ctx, ptr, new_size);
    depth--;
    return result;
}

static void
count_free(void *ctx, void *ptr)
{
    wrapped_t *w = (wrapped_t *)ctx;
    w->base.free(w->base.ctx, ptr);
}

static PyObject *
alloc_start(PyObject *self, PyObject *unused)
{
    if (installed[0] != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "allocation counting is already running (alloc_start called twice)");
        return NULL;
    }
    wrapped_t *fresh[3];
    for (int i = 0; i < 3; i++) {
        fresh[i] = (wrapped_t *)malloc(sizeof(wrapped_t));
        if (fresh[i] == NULL) {
            for (int j = 0; j < i; j++) {
                free(fresh[j]);
            }
            return PyErr_NoMemory();
        }
    }
    n_blocks = 0;
    n_bytes = 0;
    for (int i = 0; i < 3; i++) {
        PyMemAllocatorEx mine;
        PyMem_GetAllocator(DOMAINS[i], &fresh[i]->base);
        fresh[i]->domain = DOMAINS[i];
        fresh[i]->active = 1;
        mine.ctx = fresh[i];
        mine.malloc = count_malloc;
        mine.calloc = count_calloc;
        mine.realloc = count_realloc;
        mine.free = count_free;
        PyMem_SetAllocator(DOMAINS[i], &mine);
        installed[i] = fresh[i];
    }
    Py_RETURN_NONE;
}

static PyObject *
alloc_stop(PyObject *self, PyObject *unused)
{
    if (installed[0] == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "allocation counting is not running (alloc_stop without alloc_start)");
        return NULL;
    }
    int replaced = 0;
    for (int i = 0; i < 3; i++) {
        installed[i]->active = 0;
    }
    uint64_t blocks = n_blocks, bytes = n_bytes;
    for (int i = 0; i < 3; i++) {
        PyMemAllocatorEx current;
        PyMem_GetAllocator(DOMAINS[i], &current);
        if (current.ctx != installed[i] || current.malloc != count_malloc) {
            replaced = 1;
        }
    }
    if (replaced) {
        /* someone (e.g. tracemalloc.start) replaced an allocator while we counted and may call
           ours from theirs: leave every allocator as it is (restoring ours would undo their
           change) and our wrappers in place, inactive (they only forward; a few bytes leak) */
        for (int i = 0; i < 3; i++) {
            installed[i] = NULL;
        }
        PyErr_SetString(PyExc_RuntimeError,
                        "an allocator was replaced while allocations were counted "
                        "(tracemalloc started or stopped during the measured call?): counts discarded");
        return NULL;
    }
    for (int i = 0; i < 3; i++) {
        PyMem_SetAllocator(DOMAINS[i], &installed[i]->base);
        free(installed[i]);
        installed[i] = NULL;
    }
    return Py_BuildValue("(KK)", (unsigned long long)blocks, (unsigned long long)bytes);
}

static PyObject *
alloc_running(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(installed[0] != NULL);
}

static PyMethodDef methods[] = {
    {"have_client_requests", have_client_requests, METH_NOARGS,
     "1 if built with valgrind/callgrind.h (the callgrind functions work), else 0."},
    {"running_on_valgrind", running_on_valgrind, METH_NOARGS,
     "RUNNING_ON_VALGRIND: 0 natively, the nesting depth under valgrind (0 without client requests)."},
    {"start_instrumentation", start_instrumentation, METH_NOARGS, "CALLGRIND_START_INSTRUMENTATION"},
    {"stop_instrumentation", stop_instrumentation, METH_NOARGS, "CALLGRIND_STOP_INSTRUMENTATION"},
    {"toggle_collect", toggle_collect, METH_NOARGS, "CALLGRIND_TOGGLE_COLLECT"},
    {"zero_stats", zero_stats, METH_NOARGS, "CALLGRIND_ZERO_STATS"},
    {"dump_stats", dump_stats, METH_O, "CALLGRIND_DUMP_STATS_AT(name)"},
    {"alloc_start", alloc_start, METH_NOARGS,
     "Start counting allocations (RAW, MEM and OBJ domains, every thread)."},
    {"alloc_stop", alloc_stop, METH_NOARGS,
     "Stop counting; return (blocks, bytes) requested since alloc_start()."},
    {"alloc_running", alloc_running, METH_NOARGS, "Whether allocations are being counted."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native",
    "callgrind client requests and an allocation counter for pytest-perfgate", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModule_Create(&module);
}

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


/* ---------------------------------------------------------------- canonical heap
 *
 * An instruction count depends on the heap the measured call starts from: pymalloc's pools and
 * glibc's bins hold what earlier code left (timings, pids, temporary paths), and whether a pool
 * empties on every free or a realloc grows in place changes the work per allocation
 * (bench/RESULTS-instructions.md: 0.3-1.3% between processes running the same code).
 *
 * heap_install() puts a dispatcher on the MEM and OBJ domains (called with the GIL held) for the
 * rest of the process. Between heap_begin() and heap_end(), the calling thread's allocations come
 * from a fresh epoch of one reserved area: a bump pointer starting at a 2 MiB boundary, freed
 * blocks reused last-in first-out per size class. The same sequence of requests then gets the
 * same blocks at the same offsets (the low 21 bits of every address, which is what pointer hashes
 * of small dicts and sets use) whatever the process did before. Frees and reallocs of area blocks
 * are recognised by address at any time, in any thread; blocks from before the epoch go to the
 * allocator that was there. An epoch's pages are returned to the system (MADV_DONTNEED) once none
 * of its blocks is live. When the area is exhausted, requests go to the previous allocator.
 */
#if defined(__linux__) || defined(__APPLE__)
#include <string.h>
#include <sys/mman.h>
#define PERFGATE_HEAP 1
#else
#define PERFGATE_HEAP 0
#endif

#if PERFGATE_HEAP
#define HEAP_AREA ((size_t)1 << 35)       /* 32 GiB of address space, reserved, not committed */
#define HEAP_ALIGN_EPOCH ((size_t)1 << 21) /* epochs start at 2 MiB boundaries */
#define HEAP_HEADER 16                     /* keeps blocks 16-byte aligned, as pymalloc's */
#define HEAP_SMALL 64                      /* classes of 16 bytes up to 1 KiB */
#define HEAP_CLASSES (HEAP_SMALL + 40)     /* then powers of two */
#define HEAP_SLOTS (HEAP_AREA / HEAP_ALIGN_EPOCH) /* where an epoch may start */

typedef struct {
    uint64_t size;  /* the block's capacity (its class), header excluded */
    uint32_t epoch; /* the slot its epoch starts at */
    uint32_t cls;
} heap_header_t;

typedef struct {
    size_t end;  /* offset in the area of the end of its last block (it starts at its slot) */
    size_t live; /* blocks not freed */
    int open;
} heap_epoch_t;

static char *heap_base = NULL;
static size_t heap_top = 0; /* next free offset */
static PyMemAllocatorEx heap_prev[2];
static int heap_installed = 0;
static heap_epoch_t epochs[HEAP_SLOTS];
static int64_t open_slot = -1; /* the open epoch's slot; -1: none (or the area is full) */
static void *free_lists[HEAP_CLASSES];
static THREAD_LOCAL int heap_active = 0;
static uint64_t heap_fallbacks = 0; /* requests sent to the previous allocator in an epoch */

static inline int
heap_owns(const void *p)
{
    return heap_base != NULL && (const char *)p >= heap_base && (const char *)p < heap_base + HEAP_AREA;
}

static inline uint32_t
heap_class(size_t size, size_t *capacity)
{
    if (size == 0) {
        size = 1;
    }
    if (size <= (size_t)HEAP_SMALL * 16) {
        uint32_t c = (uint32_t)((size + 15) / 16) - 1;
        *capacity = ((size_t)c + 1) * 16;
        return c;
    }
    size_t cap = (size_t)HEAP_SMALL * 16 * 2;
    uint32_t c = HEAP_SMALL;
    while (cap < size) {
        cap <<= 1;
        c++;
    }
    *capacity = cap;
    return c < HEAP_CLASSES ? c : HEAP_CLASSES;
}

static void *
heap_take(size_t size)
{
    size_t cap;
    uint32_t c = heap_class(size, &cap);
    if (open_slot < 0 || c >= HEAP_CLASSES) {
        return NULL;
    }
    heap_epoch_t *e = &epochs[open_slot];
    heap_header_t *h;
    if (free_lists[c] != NULL) {
        h = (heap_header_t *)free_lists[c];
        free_lists[c] = *(void **)(h + 1);
    }
    else {
        if (heap_top + HEAP_HEADER + cap > HEAP_AREA) {
            return NULL;
        }
        h = (heap_header_t *)(heap_base + heap_top);
        heap_top += HEAP_HEADER + cap;
        e->end = heap_top;
        h->size = cap;
        h->cls = c;
        h->epoch = (uint32_t)open_slot;
    }
    e->live++;
    return (char *)h + HEAP_HEADER;
}

/* A closed epoch with no live block: its pages go back to the system, and when nothing was
   allocated after it, its addresses are used again by the next epoch. */
static void
heap_release(uint32_t slot)
{
    heap_epoch_t *e = &epochs[slot];
    size_t start = (size_t)slot * HEAP_ALIGN_EPOCH;
    if (e->end > start) {
        madvise(heap_base + start, e->end - start, MADV_DONTNEED);
    }
    if (e->end == heap_top) {
        heap_top = start;
    }
    e->end = start;
}

static void
heap_give(void *p)
{
    heap_header_t *h = (heap_header_t *)((char *)p - HEAP_HEADER);
    heap_epoch_t *e = &epochs[h->epoch];
    e->live--;
    if (e->open) {
        *(void **)(h + 1) = free_lists[h->cls];
        free_lists[h->cls] = h;
        return;
    }
    if (e->live == 0) {
        heap_release(h->epoch);
    }
}

static void *
heap_malloc(void *ctx, size_t size)
{
    PyMemAllocatorEx *prev = (PyMemAllocatorEx *)ctx;
    if (heap_active) {
        void *p = heap_take(size);
        if (p != NULL) {
            return p;
        }
        heap_fallbacks++;
    }
    return prev->malloc(prev->ctx, size);
}

static void *
heap_calloc(void *ctx, size_t nelem, size_t elsize)
{
    PyMemAllocatorEx *prev = (PyMemAllocatorEx *)ctx;
    if (heap_active && (elsize == 0 || nelem <= SIZE_MAX / elsize)) {
        void *p = heap_take(nelem * elsize);
        if (p != NULL) {
            memset(p, 0, nelem * elsize);
            return p;
        }
        heap_fallbacks++;
    }
    return prev->calloc(prev->ctx, nelem, elsize);
}

static void
heap_free(void *ctx, void *p)
{
    PyMemAllocatorEx *prev = (PyMemAllocatorEx *)ctx;
    if (p == NULL) {
        return;
    }
    if (heap_owns(p)) {
        heap_give(p);
        return;
    }
    prev->free(prev->ctx, p);
}

static void *
heap_realloc(void *ctx, void *p, size_t size)
{
    PyMemAllocatorEx *prev = (PyMemAllocatorEx *)ctx;
    if (p == NULL) {
        return heap_malloc(ctx, size);
    }
    if (!heap_owns(p)) {
        /* a block from before the epoch: its size is unknown here, the previous allocator keeps it */
        return prev->realloc(prev->ctx, p, size);
    }
    heap_header_t *h = (heap_header_t *)((char *)p - HEAP_HEADER);
    if (size <= h->size && heap_active && (int64_t)h->epoch == open_slot) {
        return p;
    }
    void *q = heap_malloc(ctx, size);
    if (q == NULL) {
        return NULL;
    }
    memcpy(q, p, size < h->size ? size : h->size);
    heap_give(p);
    return q;
}

static PyObject *
heap_install(PyObject *self, PyObject *unused)
{
    if (heap_installed) {
        Py_RETURN_NONE;
    }
    void *area = mmap(NULL, HEAP_AREA + HEAP_ALIGN_EPOCH, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (area == MAP_FAILED) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    uintptr_t aligned = ((uintptr_t)area + HEAP_ALIGN_EPOCH - 1) & ~(uintptr_t)(HEAP_ALIGN_EPOCH - 1);
    heap_base = (char *)aligned;
    static const PyMemAllocatorDomain domains[2] = {PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};
    for (int i = 0; i < 2; i++) {
        PyMemAllocatorEx mine;
        PyMem_GetAllocator(domains[i], &heap_prev[i]);
        mine.ctx = &heap_prev[i];
        mine.malloc = heap_malloc;
        mine.calloc = heap_calloc;
        mine.realloc = heap_realloc;
        mine.free = heap_free;
        PyMem_SetAllocator(domains[i], &mine);
    }
    heap_installed = 1;
    Py_RETURN_NONE;
}

static PyObject *
heap_begin(PyObject *self, PyObject *unused)
{
    if (!heap_installed) {
        PyErr_SetString(PyExc_RuntimeError, "heap_begin before heap_install");
        return NULL;
    }
    if (heap_active) {
        PyErr_SetString(PyExc_RuntimeError, "heap_begin called twice (an epoch is open)");
        return NULL;
    }
    heap_top = (heap_top + HEAP_ALIGN_EPOCH - 1) & ~(HEAP_ALIGN_EPOCH - 1);
    memset(free_lists, 0, sizeof(free_lists));
    if (heap_top < HEAP_AREA) {
        open_slot = (int64_t)(heap_top / HEAP_ALIGN_EPOCH);
        heap_epoch_t *e = &epochs[open_slot];
        e->end = heap_top;
        e->live = 0;
        e->open = 1;
    }
    else { /* the area is full of live epochs: this call allocates from the previous allocator */
        open_slot = -1;
    }
    heap_fallbacks = 0;
    heap_active = 1;
    Py_RETURN_NONE;
}

static PyObject *
heap_end(PyObject *self, PyObject *unused)
{
    if (!heap_active) {
        PyErr_SetString(PyExc_RuntimeError, "heap_end without heap_begin");
        return NULL;
    }
    heap_active = 0;
    memset(free_lists, 0, sizeof(free_lists));
    if (open_slot < 0) {
        return Py_BuildValue("(nnK)", (Py_ssize_t)0, (Py_ssize_t)0, (unsigned long long)heap_fallbacks);
    }
    uint32_t slot = (uint32_t)open_slot;
    heap_epoch_t *e = &epochs[slot];
    open_slot = -1;
    e->open = 0;
    size_t used = e->end - (size_t)slot * HEAP_ALIGN_EPOCH;
    size_t live = e->live;
    if (live == 0) {
        heap_release(slot);
    }
    return Py_BuildValue("(nnK)", (Py_ssize_t)used, (Py_ssize_t)live, (unsigned long long)heap_fallbacks);
}
#else
static PyObject *
heap_unavailable(PyObject *self, PyObject *unused)
{
    PyErr_SetString(PyExc_OSError, "the canonical heap needs mmap (Linux or macOS)");
    return NULL;
}
#define heap_install heap_unavailable
#define heap_begin heap_unavailable
#define heap_end heap_unavailable
#endif

/* ---------------------------------------------------------------- functions under callgrind
 *
 * callgrind sees C functions, and every Python function runs in the same C function (the eval
 * loop). profile_install() puts a frame evaluator (PEP 523) in front of the eval loop that enters
 * it through a trampoline of its own for each code object: a few bytes of machine code, made at
 * run time in an anonymous executable mapping, that call the eval loop. callgrind names code
 * without a symbol by its address, so each Python function gets a "function" of its own
 * (profile_functions() maps the addresses back to code objects). Run with every named function
 * skipped (callgrind's --fn-skip for every name that starts with a letter or '_'), the cost of the
 * eval loop and of every C function it calls is charged to the nearest trampoline on the stack:
 * the Python function whose frame did the work.
 *
 * callgrind needs a function it does not skip on the stack whenever it runs a skipped one, so the
 * measured calls run inside call_rooted(fn): a trampoline-like root that starts the
 * instrumentation, calls fn, and stops it again before it returns (also without the frame
 * evaluator: a plain count in a process that skips named functions).
 *
 * x86-64 only (the trampolines are hand-written machine code), CPython 3.11 and 3.12 (the frame's
 * code object is read from the interpreter's internal frame structure).
 */
#if defined(__x86_64__) && (defined(__linux__) || defined(__APPLE__)) && PY_VERSION_HEX >= 0x030B0000 && \
    PY_VERSION_HEX < 0x030D0000 && !defined(PERFGATE_NO_TRAMPOLINES)
#define PERFGATE_HAVE_TRAMPOLINES 1
#define Py_BUILD_CORE 1
#include "internal/pycore_frame.h"
#undef Py_BUILD_CORE
#include <string.h>
#include <sys/mman.h>

#if PY_VERSION_HEX >= 0x030C0000
#define FRAME_CODE(f) _PyFrame_GetCode(f)
#define GET_EXTRA PyUnstable_Code_GetExtra
#define SET_EXTRA PyUnstable_Code_SetExtra
#define REQUEST_EXTRA PyUnstable_Eval_RequestCodeExtraIndex
#else
#define FRAME_CODE(f) ((f)->f_code)
#define GET_EXTRA _PyCode_GetExtra
#define SET_EXTRA _PyCode_SetExtra
#define REQUEST_EXTRA _PyEval_RequestCodeExtraIndex
#endif

typedef PyObject *(*eval_fn)(PyThreadState *, struct _PyInterpreterFrame *, int);
typedef void (*root_fn)(void (*)(void *), void *);

#define TRAMPOLINE_SIZE 32
#define CHUNK_SIZE (1u << 20)
static unsigned char *chunk = NULL;
static size_t chunk_used = CHUNK_SIZE;
static Py_ssize_t extra_index = -1;
static PyObject *trampolines = NULL; /* address -> code object */
static root_fn root = NULL;
static PyObject *rooted_result = NULL;

static unsigned char *
code_space(size_t size)
{
    if (chunk_used + size > CHUNK_SIZE) {
        void *p = mmap(NULL, CHUNK_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            return NULL;
        }
        chunk = p;
        chunk_used = 0;
    }
    unsigned char *at = chunk + chunk_used;
    chunk_used += (size + 15) & ~(size_t)15;
    return at;
}

/* The eval loop, then the frame's local variables released while its trampoline is still on the
 * stack: the interpreter clears a finished frame after the frame evaluator returned, in its
 * caller's C code, and a function's locals (a large list it built) would be charged to its caller.
 * Only a frame nothing else can see is cleared here: owned by the thread (not a generator's, not
 * kept by a frame object such as a traceback's, whose locals stay readable). The interpreter's own
 * clearing then finds NULLs. */
/* The eval loop's address, called through this pointer: a direct call would go through the
 * procedure linkage table, whose stub callgrind cannot name, so does not skip, and would charge the
 * whole eval loop to it. */
static eval_fn default_eval = NULL;

static PyObject *
eval_and_release(PyThreadState *tstate, struct _PyInterpreterFrame *frame, int throwflag)
{
    PyObject *result = default_eval(tstate, frame, throwflag);
    if (frame->owner == FRAME_OWNED_BY_THREAD && frame->frame_obj == NULL) {
        for (int i = 0; i < frame->stacktop; i++) {
            Py_CLEAR(frame->localsplus[i]);
        }
    }
    return result;
}

/* sub rsp, 8; movabs rax, target; call rax; add rsp, 8; ret (the arguments pass through) */
static eval_fn
new_trampoline(void)
{
    static const unsigned char head[] = {0x48, 0x83, 0xEC, 0x08, 0x48, 0xB8};
    static const unsigned char tail[] = {0xFF, 0xD0, 0x48, 0x83, 0xC4, 0x08, 0xC3};
    unsigned char *p = code_space(TRAMPOLINE_SIZE);
    if (p == NULL) {
        return NULL;
    }
    uint64_t target = (uint64_t)(uintptr_t)&eval_and_release;
    memset(p, 0xCC, TRAMPOLINE_SIZE);
    memcpy(p, head, sizeof(head));
    memcpy(p + sizeof(head), &target, sizeof(target));
    memcpy(p + sizeof(head) + sizeof(target), tail, sizeof(tail));
    return (eval_fn)(void *)p;
}

/* The client request at [rsp] (6 quadwords: request, 5 arguments) with the special preamble. */
static unsigned char *
emit_request(unsigned char *p, uint32_t request)
{
    static const unsigned char store[] = {0x48, 0xC7, 0x04, 0x24}; /* mov qword [rsp], imm32 */
    static const unsigned char call[] = {
        0x48, 0x89, 0xE0, /* mov rax, rsp */
        0x31, 0xD2,       /* xor edx, edx */
        0x48, 0xC1, 0xC7, 0x03, 0x48, 0xC1, 0xC7, 0x0D, 0x48, 0xC1, 0xC7, 0x3D, 0x48, 0xC1, 0xC7, 0x33,
        0x48, 0x87, 0xDB, /* xchg rbx, rbx */
    };
    memcpy(p, store, sizeof(store));
    memcpy(p + sizeof(store), &request, 4);
    p += sizeof(store) + 4;
    for (unsigned char off = 8; off <= 40; off += 8) { /* mov qword [rsp+off], 0 */
        const unsigned char zero[] = {0x48, 0xC7, 0x44, 0x24, off, 0, 0, 0, 0};
        memcpy(p, zero, sizeof(zero));
        p += sizeof(zero);
    }
    memcpy(p, call, sizeof(call));
    return p + sizeof(call);
}

#define REQUEST_BASE(a, b) ((((uint32_t)(a)) & 0xff) << 24 | (((uint32_t)(b)) & 0xff) << 16)

static root_fn
new_root(void)
{
    static const unsigned char head[] = {
        0x53, 0x41, 0x54, 0x41, 0x55, /* push rbx; push r12; push r13 */
        0x48, 0x83, 0xEC, 0x30,       /* sub rsp, 48 */
        0x49, 0x89, 0xFC,             /* mov r12, rdi (the callback) */
        0x49, 0x89, 0xF5,             /* mov r13, rsi (its argument) */
    };
    static const unsigned char call[] = {0x4C, 0x89, 0xEF, 0x41, 0xFF, 0xD4}; /* mov rdi, r13; call r12 */
    static const unsigned char tail[] = {0x48, 0x83, 0xC4, 0x30, 0x41, 0x5D, 0x41, 0x5C, 0x5B, 0xC3};
    unsigned char *start = code_space(256);
    if (start == NULL) {
        return NULL;
    }
    unsigned char *p = start;
    memset(p, 0xCC, 256);
    memcpy(p, head, sizeof(head));
    p += sizeof(head);
    p = emit_request(p, REQUEST_BASE('C', 'T') + 4); /* START_INSTRUMENTATION */
    memcpy(p, call, sizeof(call));
    p += sizeof(call);
    p = emit_request(p, REQUEST_BASE('C', 'T') + 5); /* STOP_INSTRUMENTATION */
    memcpy(p, tail, sizeof(tail));
    return (root_fn)(void *)start;
}

static PyObject *
trampoline_eval(PyThreadState *tstate, struct _PyInterpreterFrame *frame, int throwflag)
{
    PyObject *code = (PyObject *)FRAME_CODE(frame);
    void *entry = NULL;
    if (GET_EXTRA(code, extra_index, &entry) < 0) {
        PyErr_Clear();
        entry = NULL;
    }
    if (entry == NULL) {
        entry = (void *)new_trampoline();
        if (entry == NULL) {
            return _PyEval_EvalFrameDefault(tstate, frame, throwflag);
        }
        PyObject *exc_type, *exc_value, *exc_tb;
        PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
        PyObject *key = PyLong_FromVoidPtr(entry);
        if (key == NULL || PyDict_SetItem(trampolines, key, code) < 0 || SET_EXTRA(code, extra_index, entry) < 0) {
            PyErr_Clear();
        }
        Py_XDECREF(key);
        PyErr_Restore(exc_type, exc_value, exc_tb);
    }
    return ((eval_fn)entry)(tstate, frame, throwflag);
}

static PyObject *
profile_install(PyObject *self, PyObject *unused)
{
    if (trampolines == NULL) {
        trampolines = PyDict_New();
        if (trampolines == NULL) {
            return NULL;
        }
    }
    if (extra_index < 0) {
        extra_index = REQUEST_EXTRA(NULL);
        if (extra_index < 0) {
            PyErr_SetString(PyExc_RuntimeError, "no code object extra slot is left for perfgate's trampolines");
            return NULL;
        }
    }
    default_eval = &_PyEval_EvalFrameDefault;
    _PyInterpreterState_SetEvalFrameFunc(PyInterpreterState_Get(), trampoline_eval);
    Py_RETURN_NONE;
}

static PyObject *
profile_uninstall(PyObject *self, PyObject *unused)
{
    _PyInterpreterState_SetEvalFrameFunc(PyInterpreterState_Get(), _PyEval_EvalFrameDefault);
    Py_RETURN_NONE;
}

static PyObject *
profile_functions(PyObject *self, PyObject *unused)
{
    if (trampolines == NULL) {
        return PyDict_New();
    }
    return PyDict_Copy(trampolines);
}

static void
rooted_callback(void *fn)
{
    rooted_result = PyObject_CallNoArgs((PyObject *)fn);
}

static PyObject *
call_rooted(PyObject *self, PyObject *fn)
{
    if (root == NULL) {
        root = new_root();
        if (root == NULL) {
            PyErr_SetFromErrno(PyExc_OSError);
            return NULL;
        }
    }
    rooted_result = NULL;
    root(rooted_callback, fn);
    PyObject *result = rooted_result;
    rooted_result = NULL;
    return result;
}
#else
#define PERFGATE_HAVE_TRAMPOLINES 0
static PyObject *
trampolines_unavailable(PyObject *self, PyObject *unused)
{
    PyErr_SetString(PyExc_NotImplementedError,
                    "counting instructions by Python function needs CPython 3.11 or 3.12 on x86-64 (Linux or macOS)");
    return NULL;
}
#define profile_install trampolines_unavailable
#define profile_uninstall trampolines_unavailable
#define profile_functions trampolines_unavailable
#define call_rooted trampolines_unavailable
#endif

static PyObject *
have_trampolines(PyObject *self, PyObject *unused)
{
    return PyLong_FromLong(PERFGATE_HAVE_TRAMPOLINES);
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
    {"heap_install", heap_install, METH_NOARGS,
     "Put the canonical heap's dispatcher on the MEM and OBJ domains (once per process)."},
    {"heap_begin", heap_begin, METH_NOARGS, "Open a fresh heap epoch for this thread's allocations."},
    {"heap_end", heap_end, METH_NOARGS,
     "Close the epoch; return (bytes used, blocks still live, requests sent to the previous allocator)."},
    {"have_trampolines", have_trampolines, METH_NOARGS,
     "1 if Python functions can be told apart under callgrind on this platform, else 0."},
    {"profile_install", profile_install, METH_NOARGS,
     "Evaluate every Python frame through a trampoline of its code object's own (PEP 523)."},
    {"profile_uninstall", profile_uninstall, METH_NOARGS, "Evaluate frames with the default evaluator again."},
    {"profile_functions", profile_functions, METH_NOARGS, "{trampoline address: code object} so far."},
    {"call_rooted", call_rooted, METH_O,
     "fn() inside the root: instrumentation started before it and stopped after it."},
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

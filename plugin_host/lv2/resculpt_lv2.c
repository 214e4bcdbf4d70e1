/* Resculpt as an LV2 plugin: a C shell that embeds CPython and runs resculpt.Chain on the host's buffers.
 *
 * The DSP is the Python chain (resculpt.plugin_host.lv2.bridge); this file only moves samples and control
 * values between the host and two preallocated buffers the bridge views as numpy arrays, and keeps the
 * host safe: libpython is opened at run time (dlopen), so a missing or broken Python, a missing package or a
 * chain that raises turns the plugin into a latency-aligned pass-through with the reason in the host's log.
 *
 * Port layout (indices never change; parameters follow plugin_host/daw/order.py, appended only):
 *   0, 1 audio in L/R   2, 3 audio out L/R   4 latency (control out)   5 enabled   6 preset   7.. parameters
 *
 * Build-time macros (plugin_host/lv2/build.py): RESCULPT_LIBPYTHON (path of the shared libpython),
 * RESCULPT_PYTHON (the venv's python: its pyvenv.cfg selects the venv's site-packages),
 * RESCULPT_N_CONTROLS (control inputs from port 5 on).
 */
#define _GNU_SOURCE
/* No PY_SSIZE_T_CLEAN: it renames PyObject_CallMethod to a symbol dlsym is not asked for. Every call
 * below uses formats without '#'. */
#include <Python.h>

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lv2/atom/atom.h>
#include <lv2/core/lv2.h>
#include <lv2/log/log.h>
#include <lv2/log/logger.h>
#include <lv2/state/state.h>
#include <lv2/urid/urid.h>

#define RESCULPT_URI "urn:resculpt:chain"
#define STATE_KEY RESCULPT_URI "#state"
#define N_AUDIO 4
#define P_LATENCY 4
#define P_FIRST_CONTROL 5
#define N_PORTS (P_FIRST_CONTROL + RESCULPT_N_CONTROLS)
/* Samples per call into Python: longer host blocks are cut into pieces of this size. */
#define CAP 4096
/* The dry delay line of the pass-through covers the chain's largest latency (graph.MAX_LATENCY_S = 1 s). */
#define MAX_LATENCY_S 1.0

/* The CPython entry points, resolved with dlsym from the libpython opened at run time. */
#define PY_FUNCS(X)                                                                                        \
    X(Py_IsInitialized) X(PyConfig_InitPythonConfig) X(PyConfig_SetBytesString) X(Py_InitializeFromConfig) \
    X(PyConfig_Clear) X(PyStatus_Exception) X(PyEval_SaveThread) X(PyGILState_Ensure) X(PyGILState_Release) \
    X(PyImport_ImportModule) X(PyObject_GetAttrString) X(PyObject_CallMethod) X(PyObject_CallNoArgs)       \
    X(Py_DecRef) X(PyErr_Print) X(PyErr_Occurred) X(PyUnicode_AsUTF8AndSize)
#define PY_DECLARE(f) static __typeof__(&f) p_##f;
PY_FUNCS(PY_DECLARE)

static pthread_mutex_t py_lock = PTHREAD_MUTEX_INITIALIZER;
static int py_state = 0; /* 0 not tried, 1 running, -1 unusable */
static char py_error[512];

typedef struct {
    const float* in[2];
    float* out[2];
    float* latency_port;
    const float* controls[RESCULPT_N_CONTROLS];

    LV2_Log_Logger logger;
    LV2_URID urid_state, urid_string;
    int have_urids;

    /* Shared with the bridge (numpy views): audio (2, CAP), control inputs (RESCULPT_N_CONTROLS,),
     * io = [samples this call, latency out, status out (0 ok)]. */
    float buf[2 * CAP];
    float ctrl[RESCULPT_N_CONTROLS];
    int32_t io[4];

    /* Dry delay line for the pass-through, written every run. */
    float* ring[2];
    uint32_t ring_len, wpos;
    int32_t latency;

    PyObject* bridge; /* the Python side; NULL when it failed */
    PyObject* run;    /* bridge.run, bound once */
    int failed;       /* 1: pass-through from now on (the reason was logged) */
} Plugin;

static int py_load(void) {
    /* RTLD_GLOBAL: extension modules (numpy) resolve CPython symbols from the global scope. */
    void* lib = dlopen(RESCULPT_LIBPYTHON, RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        snprintf(py_error, sizeof py_error, "cannot open %s: %s", RESCULPT_LIBPYTHON, dlerror());
        return -1;
    }
#define PY_RESOLVE(f)                                                                            \
    if (!(p_##f = (__typeof__(&f))dlsym(lib, #f))) {                                             \
        snprintf(py_error, sizeof py_error, "%s lacks %s (a different Python?)", RESCULPT_LIBPYTHON, #f); \
        return -1;                                                                               \
    }
    PY_FUNCS(PY_RESOLVE)
    if (p_Py_IsInitialized()) return 1; /* the host (or another plugin) already runs Python */
    PyConfig config;
    p_PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0; /* the host owns its signals */
    config.parse_argv = 0;
    PyStatus st = p_PyConfig_SetBytesString(&config, &config.program_name, RESCULPT_PYTHON);
    if (!p_PyStatus_Exception(st)) st = p_Py_InitializeFromConfig(&config);
    p_PyConfig_Clear(&config);
    if (p_PyStatus_Exception(st)) {
        snprintf(py_error, sizeof py_error, "Python did not start: %s", st.err_msg ? st.err_msg : "?");
        return -1;
    }
    /* Hosts instantiate on one thread and run on others: hand the GIL back now; every call takes it. */
    p_PyEval_SaveThread();
    return 1;
}

static void log_py_error(Plugin* self, const char* what) {
    /* Called with the GIL held: the traceback goes to stderr, one line to the host's log. */
    if (p_PyErr_Occurred()) p_PyErr_Print();
    lv2_log_error(&self->logger, "resculpt: %s%s\n", what, self->failed ? "; passing audio through" : "");
}

static LV2_Handle instantiate(const LV2_Descriptor* d, double rate, const char* bundle,
                              const LV2_Feature* const* features) {
    (void)d;
    Plugin* self = (Plugin*)calloc(1, sizeof(Plugin));
    if (!self) return NULL;
    LV2_Log_Log* log = NULL;
    LV2_URID_Map* map = NULL;
    for (int i = 0; features && features[i]; ++i) {
        if (!strcmp(features[i]->URI, LV2_LOG__log)) log = (LV2_Log_Log*)features[i]->data;
        if (!strcmp(features[i]->URI, LV2_URID__map)) map = (LV2_URID_Map*)features[i]->data;
    }
    lv2_log_logger_init(&self->logger, map, log);
    if (map) {
        self->urid_state = map->map(map->handle, STATE_KEY);
        self->urid_string = map->map(map->handle, LV2_ATOM__String);
        self->have_urids = 1;
    }
    self->ring_len = (uint32_t)(MAX_LATENCY_S * rate) + CAP + 1;
    for (int c = 0; c < 2; ++c) {
        self->ring[c] = (float*)calloc(self->ring_len, sizeof(float));
        if (!self->ring[c]) {
            free(self->ring[0]);
            free(self);
            return NULL;
        }
    }
    self->failed = 1; /* until the bridge is up */
    pthread_mutex_lock(&py_lock);
    if (py_state == 0) py_state = py_load();
    pthread_mutex_unlock(&py_lock);
    if (py_state < 0) {
        lv2_log_error(&self->logger, "resculpt: %s; passing audio through\n", py_error);
        return (LV2_Handle)self;
    }
    PyGILState_STATE g = p_PyGILState_Ensure();
    PyObject* mod = p_PyImport_ImportModule("resculpt.plugin_host.lv2.bridge");
    if (!mod) {
        log_py_error(self, "cannot import resculpt.plugin_host.lv2.bridge (is resculpt installed in "
                           RESCULPT_PYTHON "?)");
    } else {
        self->bridge = p_PyObject_CallMethod(mod, "create", "KiKiKds", (unsigned long long)(uintptr_t)self->buf,
                                             CAP, (unsigned long long)(uintptr_t)self->ctrl, RESCULPT_N_CONTROLS,
                                             (unsigned long long)(uintptr_t)self->io, rate, bundle);
        p_Py_DecRef(mod);
        if (!self->bridge) {
            log_py_error(self, "the chain could not be built");
        } else {
            self->run = p_PyObject_GetAttrString(self->bridge, "run");
            if (self->run) self->failed = 0;
            else log_py_error(self, "the bridge has no run()");
        }
    }
    p_PyGILState_Release(g);
    return (LV2_Handle)self;
}

static void connect_port(LV2_Handle h, uint32_t port, void* data) {
    Plugin* self = (Plugin*)h;
    if (port < 2) self->in[port] = (const float*)data;
    else if (port < N_AUDIO) self->out[port - 2] = (float*)data;
    else if (port == P_LATENCY) self->latency_port = (float*)data;
    else if (port < N_PORTS) self->controls[port - P_FIRST_CONTROL] = (const float*)data;
}

static void read_controls(Plugin* self) {
    /* An unconnected port keeps the value the bridge last wrote there (its default). */
    for (int i = 0; i < RESCULPT_N_CONTROLS; ++i)
        if (self->controls[i]) self->ctrl[i] = *self->controls[i];
}

/* Call a no-argument bridge method off the audio thread (activate, deactivate); failures pass through. */
static void call_bridge(Plugin* self, const char* method) {
    if (self->failed) return;
    PyGILState_STATE g = p_PyGILState_Ensure();
    PyObject* r = p_PyObject_CallMethod(self->bridge, method, NULL);
    if (r) p_Py_DecRef(r);
    else {
        self->failed = 1;
        log_py_error(self, method);
    }
    p_PyGILState_Release(g);
}

static void activate(LV2_Handle h) {
    Plugin* self = (Plugin*)h;
    for (int c = 0; c < 2; ++c) memset(self->ring[c], 0, self->ring_len * sizeof(float));
    self->wpos = 0;
    read_controls(self);
    call_bridge(self, "activate");
    if (!self->failed) self->latency = self->io[1];
}

static void pass_through(Plugin* self, uint32_t from, uint32_t n) {
    /* out[from:n] = input delayed by the last reported latency (the ring already holds this run's input). */
    for (int c = 0; c < 2; ++c) {
        if (!self->out[c]) continue;
        for (uint32_t k = from; k < n; ++k) {
            int64_t back = (int64_t)n - k + self->latency;
            uint32_t pos = (uint32_t)(((int64_t)self->wpos - back + self->ring_len * 2) % self->ring_len);
            self->out[c][k] = self->ring[c][pos];
        }
    }
}

static void run(LV2_Handle h, uint32_t n) {
    Plugin* self = (Plugin*)h;
    const float* in[2] = {self->in[0], self->in[1] ? self->in[1] : self->in[0]};
    /* The dry line first: hosts may process in place (out == in). */
    for (int c = 0; c < 2; ++c) {
        uint32_t w = self->wpos;
        for (uint32_t k = 0; k < n; ++k) {
            self->ring[c][w] = in[c] ? in[c][k] : 0.0f;
            if (++w == self->ring_len) w = 0;
        }
    }
    self->wpos = (uint32_t)((self->wpos + n) % self->ring_len);
    uint32_t done = 0;
    if (!self->failed) {
        read_controls(self);
        PyGILState_STATE g = p_PyGILState_Ensure();
        while (done < n) {
            uint32_t m = n - done < CAP ? n - done : CAP;
            for (int c = 0; c < 2; ++c) {
                if (in[c]) memcpy(self->buf + c * CAP, in[c] + done, m * sizeof(float));
                else memset(self->buf + c * CAP, 0, m * sizeof(float));
            }
            self->io[0] = (int32_t)m;
            PyObject* r = p_PyObject_CallNoArgs(self->run);
            if (r) p_Py_DecRef(r);
            if (!r || self->io[2] != 0) {
                /* The rest of this block and every later one pass through; the next activate() does not
                 * retry (the chain's state is unknown). */
                self->failed = 1;
                log_py_error(self, "the chain raised");
                break;
            }
            for (int c = 0; c < 2; ++c)
                if (self->out[c]) memcpy(self->out[c] + done, self->buf + c * CAP, m * sizeof(float));
            done += m;
        }
        p_PyGILState_Release(g);
        if (!self->failed) self->latency = self->io[1];
    }
    if (done < n) pass_through(self, done, n);
    if (self->latency_port) *self->latency_port = (float)self->latency;
}

static void deactivate(LV2_Handle h) { (void)h; }

static void cleanup(LV2_Handle h) {
    Plugin* self = (Plugin*)h;
    if (self->bridge) {
        PyGILState_STATE g = p_PyGILState_Ensure();
        PyObject* r = p_PyObject_CallMethod(self->bridge, "close", NULL);
        if (r) p_Py_DecRef(r);
        else if (p_PyErr_Occurred()) p_PyErr_Print();
        if (self->run) p_Py_DecRef(self->run);
        p_Py_DecRef(self->bridge);
        p_PyGILState_Release(g);
    }
    free(self->ring[0]);
    free(self->ring[1]);
    free(self);
}

/* -- State: one JSON string from the bridge (preset, every parameter, the control values taken up) -- */
static LV2_State_Status save(LV2_Handle h, LV2_State_Store_Function store, LV2_State_Handle handle,
                             uint32_t flags, const LV2_Feature* const* features) {
    (void)flags, (void)features;
    Plugin* self = (Plugin*)h;
    if (!self->bridge || !self->have_urids) return LV2_STATE_ERR_NO_FEATURE;
    LV2_State_Status status = LV2_STATE_ERR_UNKNOWN;
    PyGILState_STATE g = p_PyGILState_Ensure();
    PyObject* s = p_PyObject_CallMethod(self->bridge, "state_save", NULL);
    Py_ssize_t len = 0;
    const char* text = s ? p_PyUnicode_AsUTF8AndSize(s, &len) : NULL;
    if (text)
        status = store(handle, self->urid_state, text, (size_t)len + 1, self->urid_string,
                       LV2_STATE_IS_POD | LV2_STATE_IS_PORTABLE);
    else
        log_py_error(self, "state could not be saved");
    if (s) p_Py_DecRef(s);
    p_PyGILState_Release(g);
    return status;
}

static LV2_State_Status restore(LV2_Handle h, LV2_State_Retrieve_Function retrieve, LV2_State_Handle handle,
                                uint32_t flags, const LV2_Feature* const* features) {
    (void)flags, (void)features;
    Plugin* self = (Plugin*)h;
    if (!self->bridge || !self->have_urids) return LV2_STATE_ERR_NO_FEATURE;
    size_t size = 0;
    uint32_t type = 0, vflags = 0;
    const char* text = (const char*)retrieve(handle, self->urid_state, &size, &type, &vflags);
    if (!text || type != self->urid_string || size == 0 || text[size - 1] != '\0') return LV2_STATE_ERR_NO_PROPERTY;
    LV2_State_Status status = LV2_STATE_SUCCESS;
    PyGILState_STATE g = p_PyGILState_Ensure();
    PyObject* r = p_PyObject_CallMethod(self->bridge, "state_restore", "s", text);
    if (r) p_Py_DecRef(r);
    else {
        /* A state that cannot be applied leaves the chain as it was: the plugin keeps processing. */
        log_py_error(self, "saved state could not be restored");
        status = LV2_STATE_ERR_UNKNOWN;
    }
    p_PyGILState_Release(g);
    return status;
}

static const void* extension_data(const char* uri) {
    static const LV2_State_Interface state = {save, restore};
    if (!strcmp(uri, LV2_STATE__interface)) return &state;
    return NULL;
}

static const LV2_Descriptor descriptor = {RESCULPT_URI, instantiate, connect_port, activate, run,
                                          deactivate, cleanup, extension_data};

LV2_SYMBOL_EXPORT const LV2_Descriptor* lv2_descriptor(uint32_t index) {
    return index == 0 ? &descriptor : NULL;
}

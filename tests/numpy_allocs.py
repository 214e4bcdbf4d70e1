"""Count numpy's data allocations, with their sizes, while a block of code runs (a test helper).

tracemalloc sees net growth and a peak, but not a short-lived array that is allocated and freed inside
one callback, nor an array that coexists with pedalboard's output buffer. Here numpy itself reports every
data buffer it allocates: :func:`counting` installs a numpy memory handler (numpy's C API
``PyDataMem_SetHandler``, reached through ctypes) that records the size of each malloc/calloc/realloc,
then restores the previous handler. numpy handlers are per thread (a context variable), so only the
calling thread's allocations are seen. The buffers themselves come from libc, as numpy's default handler
would take them.

Sizes of at most 16 bytes are numpy's 0-d temporaries for Python scalar operands (``x *= 0.5``): every
Python-level numpy call can make them, so the allocation tests count only larger buffers, which are
arrays with a shape.
"""

from __future__ import annotations

import contextlib
import ctypes

import numpy as np
from numpy._core import _multiarray_umath

SCALAR_BYTES = 16

_P = ctypes.pythonapi
_P.PyCapsule_GetPointer.restype = ctypes.c_void_p
_P.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_P.PyCapsule_New.restype = ctypes.py_object
_P.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
_API = ctypes.cast(_P.PyCapsule_GetPointer(_multiarray_umath._ARRAY_API, None), ctypes.POINTER(ctypes.c_void_p))
_SET_HANDLER_SLOT = 304  # PyDataMem_SetHandler in numpy/_core/include/numpy/__multiarray_api.h (numpy >= 1.22)
# PYFUNCTYPE: called with the GIL held, as the C API requires.
_set_handler = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.py_object)(_API[_SET_HANDLER_SLOT])

_libc = ctypes.CDLL(None)
for _name, _res, _args in (("malloc", ctypes.c_void_p, [ctypes.c_size_t]),
                           ("calloc", ctypes.c_void_p, [ctypes.c_size_t, ctypes.c_size_t]),
                           ("realloc", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_size_t]),
                           ("free", None, [ctypes.c_void_p])):
    getattr(_libc, _name).restype = _res
    getattr(_libc, _name).argtypes = _args

_MALLOC = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_CALLOC = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t)
_REALLOC = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_FREE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


class _Allocator(ctypes.Structure):  # PyDataMemAllocator
    _fields_ = [("ctx", ctypes.c_void_p), ("malloc", _MALLOC), ("calloc", _CALLOC), ("realloc", _REALLOC),
                ("free", _FREE)]


class _Handler(ctypes.Structure):  # PyDataMem_Handler
    _fields_ = [("name", ctypes.c_char * 127), ("version", ctypes.c_uint8), ("allocator", _Allocator)]


class Log:
    """Sizes (bytes) of the buffers numpy allocated while counting; ``paused`` skips recording."""

    def __init__(self):
        self.sizes: list[int] = []
        self.paused = 0

    def arrays(self) -> list[int]:
        """The sizes above :data:`SCALAR_BYTES` (arrays with a shape)."""
        return [s for s in self.sizes if s > SCALAR_BYTES]


_log = Log()


def _malloc(ctx, size):
    if not _log.paused:
        _log.sizes.append(size)
    return _libc.malloc(size)


def _calloc(ctx, n, size):
    if not _log.paused:
        _log.sizes.append(n * size)
    return _libc.calloc(n, size)


def _realloc(ctx, ptr, size):
    if not _log.paused:
        _log.sizes.append(size)
    return _libc.realloc(ptr, size)


def _free(ctx, ptr, size):
    _libc.free(ptr)


# Module globals for the life of the process: arrays allocated through the handler call back into it
# when they are freed, whenever that is.
_CALLBACKS = (_MALLOC(_malloc), _CALLOC(_calloc), _REALLOC(_realloc), _FREE(_free))
_HANDLER = _Handler(b"resculpt-test-counting", 1, _Allocator(None, *_CALLBACKS))
# A capsule keeps a pointer to its name, not a copy: the name lives in a buffer of its own.
_CAPSULE_NAME = ctypes.create_string_buffer(b"mem_handler")
_CAPSULE = _P.PyCapsule_New(ctypes.addressof(_HANDLER), ctypes.addressof(_CAPSULE_NAME), None)
# Never deallocated, not even at interpreter exit, when the last such arrays may be freed after this
# module's globals are gone.
_P.Py_IncRef.argtypes = [ctypes.py_object]
for _obj in (*_CALLBACKS, _HANDLER, _CAPSULE_NAME, _CAPSULE):
    _P.Py_IncRef(_obj)


@contextlib.contextmanager
def counting():
    """``with counting() as log:`` records the sizes of numpy's data allocations on this thread."""
    _log.sizes.clear()
    _log.paused = 0
    previous = _set_handler(_CAPSULE)
    try:
        yield _log
    finally:
        _set_handler(previous)


@contextlib.contextmanager
def paused():
    """Inside ``counting()``: leave out what runs here (e.g. a library's own output buffers)."""
    _log.paused += 1
    try:
        yield
    finally:
        _log.paused -= 1


def _self_check() -> None:
    with counting() as log:
        a = np.zeros(100)
        del a
    if 800 not in log.sizes:
        raise RuntimeError("numpy's memory handler did not report an allocation: numpy_allocs cannot count")


_self_check()

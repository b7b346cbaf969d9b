// alloy._runtime: the native runtime's Python face (no MLIR here).
#include <dlfcn.h>

#include <cstdint>
#include <string>

#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include "cpu/launch.h"
#include "cuda/driver.h"
#ifdef ALLOY_WITH_METAL
#include "metal/device.h"
#endif

namespace nb = nanobind;

namespace {

[[noreturn]] void raise(PyObject *type, const std::string &msg) {
  PyErr_SetString(type, msg.c_str());
  throw nb::python_error();
}

// Borrows the int64 slots of a bytes-like object for the duration of a call.
class ArgSlots {
public:
  explicit ArgSlots(nb::handle obj) {
    if (obj.is_none()) return;
    if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) != 0) {
      PyErr_Clear();
      raise(PyExc_TypeError,
            "launch: args must be a C-contiguous buffer of int64 slots (bytes, "
            "bytearray or a 1-D int64 array), got " +
                std::string(Py_TYPE(obj.ptr())->tp_name));
    }
    held_ = true;
    if ((view_.itemsize != 1 && view_.itemsize != 8) || view_.len % 8 != 0)
      raise(PyExc_ValueError,
            "launch: args must hold whole 8-byte slots (itemsize 1 or 8, length "
            "a multiple of 8 bytes), got itemsize " + std::to_string(view_.itemsize) +
                " and " + std::to_string(view_.len) + " bytes");
  }
  ~ArgSlots() {
    if (held_) PyBuffer_Release(&view_);
  }
  const int64_t *data() const {
    return held_ ? static_cast<const int64_t *>(view_.buf) : nullptr;
  }

private:
  Py_buffer view_{};
  bool held_ = false;
};

void launch(uintptr_t fn_addr, nb::handle args, int64_t g0, int64_t g1,
            int64_t g2, int num_threads) {
  if (fn_addr == 0) raise(PyExc_ValueError, "launch: fn_addr is 0 (a null entry point)");
  if (g0 < 0 || g1 < 0 || g2 < 0)
    raise(PyExc_ValueError, "launch: grid sizes must be >= 0, got (" +
                                std::to_string(g0) + ", " + std::to_string(g1) +
                                ", " + std::to_string(g2) + ")");
  int64_t g01, total;
  if (__builtin_mul_overflow(g0, g1, &g01) || __builtin_mul_overflow(g01, g2, &total))
    raise(PyExc_OverflowError, "launch: grid size g0*g1*g2 overflows int64");
  if (num_threads < 0)
    raise(PyExc_ValueError, "launch: num_threads must be >= 0 (0 = the pool's size), got " +
                                std::to_string(num_threads));
  ArgSlots slots(args);
  auto fn = reinterpret_cast<alloy::cpu::EntryFn>(fn_addr);
  nb::gil_scoped_release nogil;
  alloy::cpu::launch(fn, slots.data(), g0, g1, g2, num_threads);
}

uintptr_t open_library(const std::string &path) {
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *err = dlerror();
    raise(PyExc_OSError, "dlopen(" + path + ") failed: " + (err ? err : "unknown error"));
  }
  return reinterpret_cast<uintptr_t>(handle);
}

uintptr_t find_symbol(uintptr_t handle, const std::string &name) {
  if (handle == 0) raise(PyExc_ValueError, "dlsym: handle is 0 (not a dlopen handle)");
  dlerror();
  void *sym = dlsym(reinterpret_cast<void *>(handle), name.c_str());
  const char *err = dlerror();
  if (err || !sym)
    raise(PyExc_OSError, "dlsym(" + name + ") failed: " +
                             (err ? err : "symbol resolves to a null address"));
  return reinterpret_cast<uintptr_t>(sym);
}

void set_num_threads(int n) {
  if (n < 1) raise(PyExc_ValueError, "set_num_threads: n must be >= 1, got " + std::to_string(n));
  nb::gil_scoped_release nogil;  // may wait for a launch in another thread
  alloy::cpu::set_num_threads(n);
}

}  // namespace

NB_MODULE(_runtime, m) {
  m.doc() = "Alloy's native runtime: CPU kernel launch over a persistent thread pool.";
  m.def("launch", &launch, nb::arg("fn_addr"), nb::arg("args").none(),
        nb::arg("g0"), nb::arg("g1"), nb::arg("g2"), nb::arg("num_threads") = 0,
        "Run fn(args, begin, end, g0, g1, g2) over linear ids [0, g0*g1*g2) on "
        "the pool, GIL released; returns when all program instances are done.");
  m.def("dlopen", &open_library, nb::arg("path"),
        "dlopen(path, RTLD_NOW | RTLD_LOCAL); returns the handle as an int.");
  m.def("dlsym", &find_symbol, nb::arg("handle"), nb::arg("name"),
        "Address of symbol `name` in a dlopen handle, as an int.");
  m.def("set_num_threads", &set_num_threads, nb::arg("n"),
        "Pool size for later launches, counting the calling thread.");
  m.def("get_num_threads", [] { return alloy::cpu::get_num_threads(); });
  alloy::cuda::register_functions(m);
#ifdef ALLOY_WITH_METAL
  alloy::metal::register_functions(m);
#endif
}

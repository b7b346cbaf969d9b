// The CUDA driver API, loaded at run time: context, PTX modules (driver JIT),
// device memory, copies and kernel launch. Errors raise RuntimeError with the
// driver's name and description of the failing call.
#include "cuda/driver.h"

#include <dlfcn.h>

#include <cstdint>
#include <mutex>
#include <string>

#include <nanobind/stl/string.h>

namespace nb = nanobind;

namespace alloy::cuda {
namespace {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using Ptr = void *;

struct Api {
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDeviceGetCount)(int *);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDeviceGetName)(char *, int, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(Ptr *, CUdevice);
  CUresult (*cuCtxSetCurrent)(Ptr);
  CUresult (*cuCtxSynchronize)();
  CUresult (*cuModuleLoadDataEx)(Ptr *, const void *, unsigned, int *, void **);
  CUresult (*cuModuleGetFunction)(Ptr *, Ptr, const char *);
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t);
  CUresult (*cuLaunchKernel)(Ptr, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             unsigned, Ptr, void **, void **);
  CUresult (*cuFuncSetAttribute)(Ptr, int, int);
  CUresult (*cuGetErrorName)(CUresult, const char **);
  CUresult (*cuGetErrorString)(CUresult, const char **);
};

Api api;
bool loaded = false;
bool ready = false;
std::string load_error;
std::once_flag load_once;
Ptr context = nullptr;

template <typename F>
bool bind(void *lib, F &fn, const char *name) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (!fn) load_error = std::string("libcuda.so.1 has no symbol ") + name;
  return fn != nullptr;
}

void load() {
  void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *e = dlerror();
    load_error = std::string("cannot load the CUDA driver (libcuda.so.1): ") + (e ? e : "unknown error");
    return;
  }
  loaded = bind(lib, api.cuInit, "cuInit") && bind(lib, api.cuDeviceGetCount, "cuDeviceGetCount") &&
           bind(lib, api.cuDeviceGet, "cuDeviceGet") && bind(lib, api.cuDeviceGetName, "cuDeviceGetName") &&
           bind(lib, api.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain") &&
           bind(lib, api.cuCtxSetCurrent, "cuCtxSetCurrent") &&
           bind(lib, api.cuCtxSynchronize, "cuCtxSynchronize") &&
           bind(lib, api.cuModuleLoadDataEx, "cuModuleLoadDataEx") &&
           bind(lib, api.cuModuleGetFunction, "cuModuleGetFunction") &&
           bind(lib, api.cuMemAlloc, "cuMemAlloc_v2") && bind(lib, api.cuMemFree, "cuMemFree_v2") &&
           bind(lib, api.cuMemcpyHtoD, "cuMemcpyHtoD_v2") && bind(lib, api.cuMemcpyDtoH, "cuMemcpyDtoH_v2") &&
           bind(lib, api.cuMemsetD8, "cuMemsetD8_v2") && bind(lib, api.cuLaunchKernel, "cuLaunchKernel") &&
           bind(lib, api.cuFuncSetAttribute, "cuFuncSetAttribute") &&
           bind(lib, api.cuGetErrorName, "cuGetErrorName") && bind(lib, api.cuGetErrorString, "cuGetErrorString");
}

std::string describe(CUresult r) {
  const char *name = nullptr, *text = nullptr;
  if (loaded) {
    api.cuGetErrorName(r, &name);
    api.cuGetErrorString(r, &text);
  }
  return std::string(name ? name : "CUDA_ERROR") + " (" + std::to_string(r) + "): " +
         (text ? text : "unknown error");
}

void check(CUresult r, const char *what) {
  if (r != 0) throw std::runtime_error(std::string(what) + " failed: " + describe(r));
}

// Loads the driver, initialises it and makes device 0's primary context current.
bool try_init() {
  std::call_once(load_once, load);
  if (!loaded) return false;
  if (ready) {
    api.cuCtxSetCurrent(context);
    return true;
  }
  CUresult r = api.cuInit(0);
  if (r != 0) {
    load_error = "cuInit failed: " + describe(r);
    return false;
  }
  int count = 0;
  r = api.cuDeviceGetCount(&count);
  if (r != 0 || count == 0) {
    load_error = r != 0 ? "cuDeviceGetCount failed: " + describe(r) : "the CUDA driver sees no device";
    return false;
  }
  CUdevice dev = 0;
  r = api.cuDeviceGet(&dev, 0);
  if (r == 0) r = api.cuDevicePrimaryCtxRetain(&context, dev);
  if (r == 0) r = api.cuCtxSetCurrent(context);
  if (r != 0) {
    load_error = "creating the CUDA context failed: " + describe(r);
    return false;
  }
  ready = true;
  return true;
}

void require() {
  if (!try_init()) throw std::runtime_error(load_error);
}

// Borrows a bytes-like object's memory for the duration of a call.
struct View {
  explicit View(nb::handle obj, const char *what) {
    if (PyObject_GetBuffer(obj.ptr(), &view, PyBUF_C_CONTIGUOUS) != 0) {
      PyErr_Clear();
      throw nb::type_error((std::string(what) + ": expected a contiguous bytes-like object").c_str());
    }
  }
  ~View() { PyBuffer_Release(&view); }
  Py_buffer view{};
};

uintptr_t load_module(nb::bytes ptx) {
  require();
  std::string image(ptx.c_str(), ptx.size());
  char log[8192] = {0};
  int opts[] = {5 /*CU_JIT_ERROR_LOG_BUFFER*/, 6 /*CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES*/};
  void *vals[] = {log, reinterpret_cast<void *>(static_cast<uintptr_t>(sizeof(log)))};
  Ptr mod = nullptr;
  CUresult r = api.cuModuleLoadDataEx(&mod, image.c_str(), 2, opts, vals);
  if (r != 0)
    throw std::runtime_error("cuModuleLoadDataEx (PTX JIT) failed: " + describe(r) + "\n" + log);
  return reinterpret_cast<uintptr_t>(mod);
}

uintptr_t get_function(uintptr_t mod, const std::string &name) {
  require();
  Ptr fn = nullptr;
  check(api.cuModuleGetFunction(&fn, reinterpret_cast<Ptr>(mod), name.c_str()),
        ("cuModuleGetFunction(" + name + ")").c_str());
  return reinterpret_cast<uintptr_t>(fn);
}

uintptr_t mem_alloc(size_t nbytes) {
  require();
  CUdeviceptr p = 0;
  check(api.cuMemAlloc(&p, nbytes ? nbytes : 1), ("cuMemAlloc(" + std::to_string(nbytes) + " bytes)").c_str());
  return static_cast<uintptr_t>(p);
}

void mem_free(uintptr_t p) {
  require();
  check(api.cuMemFree(p), "cuMemFree");
}

void memcpy_htod(uintptr_t dst, uintptr_t src, size_t nbytes) {
  require();
  nb::gil_scoped_release nogil;
  check(api.cuMemcpyHtoD(dst, reinterpret_cast<const void *>(src), nbytes), "cuMemcpyHtoD");
}

void memcpy_dtoh(uintptr_t dst, uintptr_t src, size_t nbytes) {
  require();
  nb::gil_scoped_release nogil;
  check(api.cuMemcpyDtoH(reinterpret_cast<void *>(dst), src, nbytes), "cuMemcpyDtoH");
}

void memset8(uintptr_t dst, unsigned value, size_t nbytes) {
  require();
  check(api.cuMemsetD8(dst, static_cast<unsigned char>(value), nbytes), "cuMemsetD8");
}

void launch(uintptr_t fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned shared,
            uintptr_t stream, nb::handle args) {
  require();
  if (fn == 0) throw nb::value_error("cuda_launch: fn is 0 (not a CUfunction)");
  View v(args, "cuda_launch args");
  if (v.view.len % 8) throw nb::value_error("cuda_launch: args must hold whole 8-byte slots");
  size_t n = static_cast<size_t>(v.view.len / 8);
  auto *slots = static_cast<int64_t *>(v.view.buf);
  void *params[64];
  if (n > 64) throw nb::value_error("cuda_launch: more than 64 kernel parameters");
  for (size_t i = 0; i < n; ++i) params[i] = &slots[i];  // little-endian: each slot's low bytes first
  check(api.cuLaunchKernel(reinterpret_cast<Ptr>(fn), gx, gy, gz, bx, 1, 1, shared,
                           reinterpret_cast<Ptr>(stream), params, nullptr),
        "cuLaunchKernel");
}

// Lets `fn` launch with up to `nbytes` of dynamic shared memory (above 48 KiB needs this opt-in).
void set_dynamic_shared(uintptr_t fn, int nbytes) {
  require();
  constexpr int kMaxDynamicSharedSizeBytes = 8;  // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
  check(api.cuFuncSetAttribute(reinterpret_cast<Ptr>(fn), kMaxDynamicSharedSizeBytes, nbytes),
        "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)");
}

void synchronize() {
  require();
  nb::gil_scoped_release nogil;
  check(api.cuCtxSynchronize(), "cuCtxSynchronize");
}

std::string device_name() {
  require();
  char name[256] = {0};
  CUdevice dev = 0;
  check(api.cuDeviceGet(&dev, 0), "cuDeviceGet");
  check(api.cuDeviceGetName(name, sizeof(name), dev), "cuDeviceGetName");
  return name;
}

}  // namespace

void register_functions(nb::module_ &m) {
  m.def("cuda_available", [] { return try_init(); },
        "True when libcuda.so.1 loads and device 0's primary context is current.");
  m.def("cuda_error", [] { try_init(); return load_error; }, "Why the CUDA driver is unavailable ('' if it is).");
  m.def("cuda_device_name", &device_name);
  m.def("cuda_load_module", &load_module, nb::arg("ptx"), "cuModuleLoadDataEx on PTX text; the CUmodule.");
  m.def("cuda_get_function", &get_function, nb::arg("module"), nb::arg("name"));
  m.def("cuda_malloc", &mem_alloc, nb::arg("nbytes"));
  m.def("cuda_free", &mem_free, nb::arg("ptr"));
  m.def("cuda_memcpy_htod", &memcpy_htod, nb::arg("dst"), nb::arg("src"), nb::arg("nbytes"));
  m.def("cuda_memcpy_dtoh", &memcpy_dtoh, nb::arg("dst"), nb::arg("src"), nb::arg("nbytes"));
  m.def("cuda_memset", &memset8, nb::arg("dst"), nb::arg("value"), nb::arg("nbytes"));
  m.def("cuda_launch", &launch, nb::arg("fn"), nb::arg("gx"), nb::arg("gy"), nb::arg("gz"), nb::arg("block"),
        nb::arg("shared"), nb::arg("stream"), nb::arg("args"),
        "cuLaunchKernel(fn, grid, (block,1,1), shared, stream) with one 8-byte slot per parameter.");
  m.def("cuda_set_dynamic_shared", &set_dynamic_shared, nb::arg("fn"), nb::arg("nbytes"),
        "Allow launches of fn with up to nbytes of dynamic shared memory.");
  m.def("cuda_synchronize", &synchronize);
}

}  // namespace alloy::cuda

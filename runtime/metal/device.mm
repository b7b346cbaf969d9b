// Metal device access for alloy._runtime: MSL compiled with newLibraryWithSource, shared-storage buffers,
// one compute dispatch per launch, waited for before returning.
//
// UNVERIFIED: no Mac is available to this project; this file has never been compiled or run. It follows
// Apple's Metal API reference (MTLDevice, MTLLibrary, MTLComputePipelineState, MTLCommandQueue,
// MTLComputeCommandEncoder) and the argument convention of the MSL translator (lib/msl/translate.cpp):
// kernel parameter i is [[buffer(i)]], a pointer as `device T*`, a scalar as `constant T&`.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "metal/device.h"

namespace nb = nanobind;

namespace alloy::metal {
namespace {

id<MTLDevice> g_device = nil;
id<MTLCommandQueue> g_queue = nil;

[[noreturn]] void raise(const std::string &msg) {
  PyErr_SetString(PyExc_RuntimeError, msg.c_str());
  throw nb::python_error();
}

bool open_device() {
  if (g_device != nil) return true;
  g_device = MTLCreateSystemDefaultDevice();
  if (g_device == nil) return false;
  g_queue = [g_device newCommandQueue];
  return g_queue != nil;
}

id<MTLDevice> device() {
  if (!open_device()) raise("no Metal device (MTLCreateSystemDefaultDevice returned nil)");
  return g_device;
}

// Handles are retained Objective-C objects passed to Python as integers.
uintptr_t retain(id object) { return reinterpret_cast<uintptr_t>((__bridge_retained void *)object); }
template <typename T> T borrow(uintptr_t handle) { return (__bridge T)reinterpret_cast<void *>(handle); }
void release(uintptr_t handle) { if (handle) CFRelease(reinterpret_cast<CFTypeRef>(handle)); }

std::string describe(NSError *error) {
  return error ? std::string([[error localizedDescription] UTF8String]) : std::string("unknown error");
}

// Compiles MSL and returns a compute pipeline state for `entry`.
uintptr_t load_pipeline(const std::string &msl, const std::string &entry) {
  @autoreleasepool {
    NSError *error = nil;
    NSString *source = [NSString stringWithUTF8String:msl.c_str()];
    id<MTLLibrary> library = [device() newLibraryWithSource:source options:nil error:&error];
    if (library == nil) raise("Metal could not compile the kernel's MSL: " + describe(error));
    id<MTLFunction> function = [library newFunctionWithName:[NSString stringWithUTF8String:entry.c_str()]];
    if (function == nil) raise("the MSL has no kernel function named " + entry);
    id<MTLComputePipelineState> pipeline = [device() newComputePipelineStateWithFunction:function error:&error];
    if (pipeline == nil) raise("Metal could not build a pipeline for " + entry + ": " + describe(error));
    return retain(pipeline);
  }
}

int max_threads(uintptr_t pipeline) {
  return static_cast<int>([borrow<id<MTLComputePipelineState>>(pipeline) maxTotalThreadsPerThreadgroup]);
}

// A shared-storage buffer (CPU and GPU see the same memory on Apple silicon).
uintptr_t new_buffer(uint64_t nbytes) {
  id<MTLBuffer> buffer = [device() newBufferWithLength:(nbytes ? nbytes : 1) options:MTLResourceStorageModeShared];
  if (buffer == nil) raise("Metal could not allocate a buffer of " + std::to_string(nbytes) + " bytes");
  return retain(buffer);
}

uintptr_t buffer_contents(uintptr_t buffer) {
  return reinterpret_cast<uintptr_t>([borrow<id<MTLBuffer>>(buffer) contents]);
}

// One dispatch of grid (g0, g1, g2) threadgroups of `threads` threads. `slots` holds one 8-byte slot per
// kernel parameter; `sizes[i]` is 0 for a buffer (the slot holds its handle) or a scalar's byte size.
void launch(uintptr_t pipeline, uint64_t g0, uint64_t g1, uint64_t g2, uint64_t threads,
            const std::vector<int64_t> &slots, const std::vector<int> &sizes) {
  if (slots.size() != sizes.size()) raise("metal_launch: slots and sizes differ in length");
  device();
  @autoreleasepool {
    id<MTLCommandBuffer> commands = [g_queue commandBuffer];
    id<MTLComputeCommandEncoder> encoder = [commands computeCommandEncoder];
    [encoder setComputePipelineState:borrow<id<MTLComputePipelineState>>(pipeline)];
    for (size_t i = 0; i < slots.size(); ++i) {
      if (sizes[i] == 0) {
        [encoder setBuffer:borrow<id<MTLBuffer>>(static_cast<uintptr_t>(slots[i])) offset:0 atIndex:i];
      } else {
        int64_t value = slots[i];  // little-endian: the scalar's bytes come first
        [encoder setBytes:&value length:static_cast<NSUInteger>(sizes[i]) atIndex:i];
      }
    }
    [encoder dispatchThreadgroups:MTLSizeMake(g0, g1, g2) threadsPerThreadgroup:MTLSizeMake(threads, 1, 1)];
    [encoder endEncoding];
    [commands commit];
    {
      nb::gil_scoped_release nogil;
      [commands waitUntilCompleted];
    }
    if ([commands status] == MTLCommandBufferStatusError)
      raise("the Metal kernel failed: " + describe([commands error]));
  }
}

}  // namespace

void register_functions(nb::module_ &m) {
  m.def("metal_available", [] { return open_device(); });
  m.def("metal_device_name", [] { return std::string([[device() name] UTF8String]); });
  m.def("metal_load_pipeline", &load_pipeline, nb::arg("msl"), nb::arg("entry"));
  m.def("metal_max_threads", &max_threads, nb::arg("pipeline"));
  m.def("metal_new_buffer", &new_buffer, nb::arg("nbytes"));
  m.def("metal_buffer_contents", &buffer_contents, nb::arg("buffer"));
  m.def("metal_release", &release, nb::arg("handle"));
  m.def("metal_launch", &launch, nb::arg("pipeline"), nb::arg("g0"), nb::arg("g1"), nb::arg("g2"),
        nb::arg("threads"), nb::arg("slots"), nb::arg("sizes"));
}

}  // namespace alloy::metal

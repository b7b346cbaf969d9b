// CUDA driver access for alloy._runtime: libcuda.so.1 is opened at run time
// (dlopen), so the extension builds and imports on machines without CUDA.
#pragma once

#include <nanobind/nanobind.h>

namespace alloy::cuda {

// Adds the cuda_* functions to the extension module.
void register_functions(nanobind::module_ &m);

}  // namespace alloy::cuda

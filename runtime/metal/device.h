// Metal device access for alloy._runtime (macOS only; UNVERIFIED: this project has no Mac, so this file has
// never been compiled or run). Built only when CMake targets Apple platforms.
#pragma once

#include <nanobind/nanobind.h>

namespace alloy::metal {

// Adds the metal_* functions to the extension module.
void register_functions(nanobind::module_ &m);

}  // namespace alloy::metal

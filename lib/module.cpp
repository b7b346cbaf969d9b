// alloy._compiler: C++ compiler pieces working on MLIR modules through the MLIR C API.
// The module crosses from the Python bindings via its `_CAPIPtr` capsule; import mlir first
// so that libMLIRPythonCAPI.so is already loaded.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include "mlir-c/Bindings/Python/Interop.h"
#include "msl/emitter.h"

namespace nb = nanobind;

static MlirOperation moduleOperation(nb::handle obj) {
  if (!nb::hasattr(obj, MLIR_PYTHON_CAPI_PTR_ATTR))
    throw nb::type_error("translate_to_msl expects an mlir.ir.Module or Operation");
  nb::object capsule = obj.attr(MLIR_PYTHON_CAPI_PTR_ATTR);
  MlirModule mod = mlirPythonCapsuleToModule(capsule.ptr());
  if (!mlirModuleIsNull(mod)) return mlirModuleGetOperation(mod);
  PyErr_Clear();
  MlirOperation op = mlirPythonCapsuleToOperation(capsule.ptr());
  if (mlirOperationIsNull(op)) {
    PyErr_Clear();
    throw nb::type_error("translate_to_msl expects an mlir.ir.Module or Operation");
  }
  return op;
}

NB_MODULE(_compiler, m) {
  m.doc() = "Alloy's C++ compiler pieces (MLIR C API): the MSL translator.";
  static nb::exception<alloy::msl::TranslationError> error(m, "MSLTranslationError", PyExc_ValueError);
  m.def(
      "translate_to_msl",
      [](nb::handle module) { return alloy::msl::translateModule(moduleOperation(module)); },
      nb::arg("module"),
      "Translate the gpu.module kernels of a gpu-dialect SIMT module to Metal Shading Language source.\n"
      "Raises MSLTranslationError (a ValueError) naming the op and location it cannot translate.");
}

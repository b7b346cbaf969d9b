"""LLVM-dialect module -> LLVM IR -> optimized object code, in process.

Translation uses the MLIR C API (`mlirTranslateModuleToLLVMIR`, exported by
the bindings' libMLIRPythonCAPI.so); optimization (`default<O3>`) and code
emission use the LLVM C API of the libLLVM.so that the bindings already
loaded, for the configured CPU (targets/cpu/machine.py: the host's CPU and
features, an x86-64 level, or AArch64), PIC relocations.
"""
from __future__ import annotations

import ctypes
import os
import platform
from dataclasses import dataclass
from functools import lru_cache

from alloy.passes.errors import LoweringError

_c = ctypes.c_void_p


class _Handle(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p)]


@dataclass
class MachineCode:
    object: bytes | None  # None when only a listing was asked for
    llvm_ir: str | None = None
    asm: str | None = None


@lru_cache(maxsize=None)
def _libs():
    from mlir._mlir_libs import get_lib_dirs

    libdir = get_lib_dirs()[0]
    ext = ".dylib" if platform.system() == "Darwin" else ".so"
    capi = ctypes.CDLL(os.path.join(libdir, "libMLIRPythonCAPI" + ext))  # already loaded by `import mlir`
    llvm = ctypes.CDLL(os.path.join(libdir, "..", "..", "llvm", "lib", "libLLVM" + ext))  # its dependency
    capi.mlirTranslateModuleToLLVMIR.restype = _c
    capi.mlirTranslateModuleToLLVMIR.argtypes = [_Handle, _c]
    sig = {
        "LLVMContextCreate": (_c, []),
        "LLVMContextDispose": (None, [_c]),
        "LLVMDisposeModule": (None, [_c]),
        "LLVMGetDefaultTargetTriple": (_c, []),
        "LLVMGetHostCPUName": (_c, []),
        "LLVMGetHostCPUFeatures": (_c, []),
        "LLVMDisposeMessage": (None, [_c]),
        "LLVMSetTarget": (None, [_c, ctypes.c_char_p]),
        "LLVMGetTargetFromTriple": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(_c), ctypes.POINTER(_c)]),
        "LLVMCreateTargetMachine": (_c, [_c, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                         ctypes.c_int, ctypes.c_int, ctypes.c_int]),
        "LLVMDisposeTargetMachine": (None, [_c]),
        "LLVMCreateTargetDataLayout": (_c, [_c]),
        "LLVMSetModuleDataLayout": (None, [_c, _c]),
        "LLVMDisposeTargetData": (None, [_c]),
        "LLVMCreatePassBuilderOptions": (_c, []),
        "LLVMDisposePassBuilderOptions": (None, [_c]),
        "LLVMRunPasses": (_c, [_c, ctypes.c_char_p, _c, _c]),
        "LLVMGetErrorMessage": (_c, [_c]),
        "LLVMDisposeErrorMessage": (None, [_c]),
        "LLVMTargetMachineEmitToMemoryBuffer": (ctypes.c_int, [_c, _c, ctypes.c_int, ctypes.POINTER(_c),
                                                               ctypes.POINTER(_c)]),
        "LLVMGetBufferStart": (_c, [_c]),
        "LLVMGetBufferSize": (ctypes.c_size_t, [_c]),
        "LLVMDisposeMemoryBuffer": (None, [_c]),
        "LLVMPrintModuleToString": (_c, [_c]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(llvm, name)
        fn.restype, fn.argtypes = res, args
    for arch in ("X86", "AArch64"):  # the host's and the cross-compiled CPU (cpu_target)
        for part in ("TargetInfo", "Target", "TargetMC", "AsmPrinter"):
            getattr(llvm, f"LLVMInitialize{arch}{part}")()
    return capi, llvm


def _message(llvm, ptr, dispose="LLVMDisposeMessage") -> str:
    text = ctypes.string_at(ptr).decode()
    getattr(llvm, dispose)(ptr)
    return text


def _capsule_ptr(obj) -> int:
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_ptr = ctypes.pythonapi.PyCapsule_GetPointer
    get_ptr.restype, get_ptr.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    cap = obj._CAPIPtr
    return get_ptr(cap, get_name(cap))


@lru_cache(maxsize=None)
def host_target() -> tuple[str, str, str]:
    """(triple, cpu name, cpu features) of this machine, as LLVM reads them."""
    _, llvm = _libs()
    return tuple(_message(llvm, getattr(llvm, f)())
                 for f in ("LLVMGetDefaultTargetTriple", "LLVMGetHostCPUName", "LLVMGetHostCPUFeatures"))


def compile_llvm_dialect(module_op, machine, *, keep_ir: bool = False, keep_asm: bool = False,
                         emit_object: bool = True, passes: str = "default<O3>") -> MachineCode:
    """Translate an LLVM-dialect module (an ir.Operation) and compile it to an object file for
    `machine` (a targets.cpu.machine.CpuMachine); each code emission (object, assembly) is a full
    run of LLVM's code generator, so a listing without `emit_object` costs one, not two."""
    capi, llvm = _libs()
    triple, cpu, features = (machine.triple.encode(), machine.cpu.encode(), machine.features.encode())
    ctx = llvm.LLVMContextCreate()
    mod = capi.mlirTranslateModuleToLLVMIR(_Handle(_capsule_ptr(module_op)), ctx)
    if not mod:
        llvm.LLVMContextDispose(ctx)
        raise LoweringError("translation of the LLVM dialect module to LLVM IR failed")
    target, err = _c(), _c()
    tm = None
    try:
        llvm.LLVMSetTarget(mod, triple)
        if llvm.LLVMGetTargetFromTriple(triple, ctypes.byref(target), ctypes.byref(err)):
            raise LoweringError(f"no LLVM target for {triple.decode()}: {_message(llvm, err)}")
        tm = llvm.LLVMCreateTargetMachine(target, triple, cpu, features, 3, 2, 0)  # O3, PIC, default model
        layout = llvm.LLVMCreateTargetDataLayout(tm)
        llvm.LLVMSetModuleDataLayout(mod, layout)
        llvm.LLVMDisposeTargetData(layout)
        opts = llvm.LLVMCreatePassBuilderOptions()
        e = llvm.LLVMRunPasses(mod, passes.encode(), tm, opts)
        llvm.LLVMDisposePassBuilderOptions(opts)
        if e:
            raise LoweringError(f"LLVM optimization failed: {_message(llvm, llvm.LLVMGetErrorMessage(e), 'LLVMDisposeErrorMessage')}")
        ir_text = _message(llvm, llvm.LLVMPrintModuleToString(mod)) if keep_ir else None
        obj = _emit(llvm, tm, mod, 1) if emit_object else None  # first: code emission runs IR passes on the module
        asm = _emit(llvm, tm, mod, 0).decode() if keep_asm else None
        return MachineCode(obj, ir_text, asm)
    finally:
        if tm:
            llvm.LLVMDisposeTargetMachine(tm)
        llvm.LLVMDisposeModule(mod)
        llvm.LLVMContextDispose(ctx)


def _emit(llvm, tm, mod, kind: int) -> bytes:
    err, buf = _c(), _c()
    if llvm.LLVMTargetMachineEmitToMemoryBuffer(tm, mod, kind, ctypes.byref(err), ctypes.byref(buf)):
        raise LoweringError(f"LLVM code emission failed: {_message(llvm, err)}")
    try:
        return ctypes.string_at(llvm.LLVMGetBufferStart(buf), llvm.LLVMGetBufferSize(buf))
    finally:
        llvm.LLVMDisposeMemoryBuffer(buf)

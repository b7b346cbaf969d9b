"""Elementwise ATen ops as Alloy expressions, and the source of one fused elementwise kernel per group.

Each lowered op is an expression template over its operands' float32 values
(booleans stay masks inside a kernel). A group of elementwise nodes with one
output shape becomes one `@al.kernel`: every input is loaded once through its
own strides (broadcast dimensions have stride 0, views are never copied), the
members are computed in float32 and each escaping value is stored once in its
dtype. Sizes and strides are runtime arguments, so a new shape reuses the
compiled kernel; only the last dimension's stride class (0, 1 or other) is
part of the source.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import uuid
from dataclasses import dataclass

import torch

import alloy as al

aten = torch.ops.aten
prims = torch.ops.prims

# op -> template over {0}, {1}, ... (operands) and named scalar arguments
UNARY = {
    aten.neg.default: "-{0}", aten.exp.default: "al.exp({0})", aten.log.default: "al.log({0})",
    aten.sqrt.default: "al.sqrt({0})", aten.rsqrt.default: "al.rsqrt({0})", aten.tanh.default: "al.tanh({0})",
    aten.sigmoid.default: "al.sigmoid({0})", aten.abs.default: "al.abs({0})", aten.erf.default: "al.erf({0})",
    aten.sin.default: "al.sin({0})", aten.cos.default: "al.cos({0})", aten.reciprocal.default: "(1.0 / {0})",
    aten.relu.default: "al.maximum({0}, 0.0)", aten.exp2.default: "al.exp2({0})",
    aten.expm1.default: "(al.exp({0}) - 1.0)", aten.log1p.default: "al.log(1.0 + {0})",
    aten.floor.default: "al.floor({0})", aten.ceil.default: "al.ceil({0})",
    aten.alias.default: "{0}",
    aten.silu.default: "({0} * al.sigmoid({0}))",
}
BINARY = {
    aten.add.Tensor: "({0} + {1})", aten.sub.Tensor: "({0} - {1})", aten.mul.Tensor: "({0} * {1})",
    aten.div.Tensor: "({0} / {1})", aten.maximum.default: "al.maximum({0}, {1})",
    aten.minimum.default: "al.minimum({0}, {1})", aten.pow.Tensor_Tensor: "al.exp({1} * al.log({0}))",
    aten.gt.Tensor: "({0} > {1})", aten.ge.Tensor: "({0} >= {1})", aten.lt.Tensor: "({0} < {1})",
    aten.le.Tensor: "({0} <= {1})", aten.eq.Tensor: "({0} == {1})", aten.ne.Tensor: "({0} != {1})",
    aten.add.Scalar: "({0} + {1})", aten.sub.Scalar: "({0} - {1})", aten.mul.Scalar: "({0} * {1})",
    aten.div.Scalar: "({0} / {1})", aten.gt.Scalar: "({0} > {1})", aten.ge.Scalar: "({0} >= {1})",
    aten.lt.Scalar: "({0} < {1})", aten.le.Scalar: "({0} <= {1})", aten.eq.Scalar: "({0} == {1})",
    aten.ne.Scalar: "({0} != {1})", aten.rsub.Scalar: "({1} - {0})",
    aten.sigmoid_backward.default: "({0} * {1} * (1.0 - {1}))",
    aten.tanh_backward.default: "({0} * (1.0 - {1} * {1}))",
    aten.threshold_backward.default: "al.where({1} <= {2}, 0.0, {0})",
}
TERNARY = {prims.fma.default: "({0} * {1} + {2})"}  # lerp decomposes into it (Adam's moment updates)
CONVERTS = (prims.convert_element_type.default, aten._to_copy.default)
COMPARISONS = {op for op, t in BINARY.items() if any(c in t for c in ("<", ">", "=="))}
FLOAT_DTYPES = {torch.float32: "al.float32", torch.float16: "al.float16", torch.bfloat16: "al.bfloat16"}
KERNEL_DTYPES = set(FLOAT_DTYPES) | {torch.bool}
BLOCK = 1024


def literal(v) -> str | None:
    if isinstance(v, bool):
        return "1.0" if v else "0.0"
    if isinstance(v, (int, float)):
        return repr(float(v)) if math.isfinite(v) else ('float("inf")' if v > 0 else '-float("inf")')
    return None


def expression(node, operand) -> str | None:
    """The Alloy expression of an elementwise node (`operand(arg)` names a tensor operand's value), or None
    when the node is not one this lowering covers."""
    op, args, kw = node.target, node.args, node.kwargs
    if op in CONVERTS or op is aten.clone.default:
        if set(kw) - {"dtype", "layout", "device", "memory_format"}:
            return None
        return operand(args[0])
    if op is aten.gelu.default:
        x = operand(args[0])
        if kw.get("approximate", "none") == "tanh":
            return f"(0.5 * {x} * (1.0 + al.tanh(0.7978845608028654 * ({x} + 0.044715 * {x} * {x} * {x}))))"
        return f"(0.5 * {x} * (1.0 + al.erf({x} * 0.7071067811865476)))"
    if op is aten.gelu_backward.default:
        g, x = operand(args[0]), operand(args[1])
        if kw.get("approximate", "none") == "tanh":
            t = f"al.tanh(0.7978845608028654 * ({x} + 0.044715 * {x} * {x} * {x}))"
            return (f"({g} * (0.5 * (1.0 + {t}) + 0.5 * {x} * (1.0 - {t} * {t}) * 0.7978845608028654 * "
                    f"(1.0 + 0.134145 * {x} * {x})))")
        return (f"({g} * (0.5 * (1.0 + al.erf({x} * 0.7071067811865476)) + "
                f"{x} * 0.3989422804014327 * al.exp(-0.5 * {x} * {x})))")
    if op is aten.where.self:
        return f"al.where({operand(args[0])} != 0.0, {operand(args[1])}, {operand(args[2])})"
    if op is aten.pow.Tensor_Scalar:
        e = literal(args[1])
        if e is None:
            return None
        x = operand(args[0])
        return {"2.0": f"({x} * {x})", "1.0": x, "0.5": f"al.sqrt({x})", "-1.0": f"(1.0 / {x})",
                "3.0": f"({x} * {x} * {x})"}.get(e, f"al.exp({e} * al.log({x}))")
    if op is aten.pow.Scalar:  # a scalar base to a tensor power: an optimizer's beta ** step
        base = args[0]
        if isinstance(base, bool) or not isinstance(base, (int, float)) or not base > 0:
            return None
        return f"al.exp({math.log(base)!r} * {operand(args[1])})"
    if op is aten.copy.default and not kw:  # functional copy: src's values in self's shape and dtype
        return operand(args[1])
    if op is aten.sign.default:
        x = operand(args[0])
        return f"al.where({x} > 0.0, 1.0, al.where({x} < 0.0, -1.0, 0.0))"
    if op is aten.clamp.default and not kw:
        bounds = (list(args[1:]) + [None, None])[:2]
        text = operand(args[0])
        for bound, fn in zip(bounds, ("al.maximum", "al.minimum")):
            if bound is not None:
                lit = literal(bound)
                if lit is None:
                    return None
                text = f"{fn}({text}, {lit})"
        return text
    if op in (aten.clamp_min.default, aten.clamp_max.default):
        bound = literal(args[1])
        fn = "al.maximum" if op is aten.clamp_min.default else "al.minimum"
        return None if bound is None else f"{fn}({operand(args[0])}, {bound})"
    if op is aten.logical_not.default:
        return f"al.where({operand(args[0])} == 0.0, 1.0, 0.0)"
    if op is aten.add.Tensor or op is aten.sub.Tensor:
        alpha = kw.get("alpha", 1)
        if alpha != 1:
            a = literal(alpha)
            sign = "+" if op is aten.add.Tensor else "-"
            return None if a is None else f"({operand(args[0])} {sign} {a} * {operand(args[1])})"
    if kw:
        return None
    template = UNARY.get(op) or BINARY.get(op) or TERNARY.get(op)
    if template is None:
        return None
    values = [operand(a) for a in args]
    if any(v is None for v in values):
        return None
    text = template.format(*values)
    return f"al.where({text}, 1.0, 0.0)" if op in COMPARISONS else text


@dataclass(frozen=True)
class Operand:
    """How a kernel input is read: whether its last stride is 0, 1 or other, and whether it holds booleans."""

    last_stride: str  # "0", "1" or "s"
    is_bool: bool


def kernel_source(name: str, rank: int, operands: list[Operand], body: list[str], results: list[tuple[str, str]],
                  result_strides: list[str]) -> str:
    """The source of one fused elementwise kernel over a `rank`-dimensional output.

    `body` assigns v0, v1, ... from x0, x1, ... (the loaded operands); `results` is (value name, dtype
    expression) per output, stored through its own strides (`result_strides`: the last one's class)."""
    sizes = [f"n{d}" for d in range(rank)]
    params = [f"X{i}" for i in range(len(operands))] + [f"Y{j}: al.output" for j in range(len(results))]
    params += sizes
    classes = [o.last_stride for o in operands] + list(result_strides)
    names = [f"s{i}" for i in range(len(operands))] + [f"t{j}" for j in range(len(results))]
    for prefix, cls in zip(names, classes):
        params += [f"{prefix}_{d}" for d in range(rank - 1)]
        if cls == "s":
            params.append(f"{prefix}_{rank - 1}")
    params.append("BLOCK: al.constexpr")
    last = sizes[-1]
    lines = ["@al.kernel", f"def {name}({', '.join(params)}):",
             "    row = al.program_id(0)",
             "    offs = al.program_id(1) * BLOCK + al.arange(0, BLOCK)",
             f"    mask = offs < {last}"]
    rest = "row"
    for d in range(rank - 2, -1, -1):
        if d == 0:
            lines.append(f"    i0 = {rest}")
        else:
            lines.append(f"    i{d} = {rest} % n{d}")
            lines.append(f"    r{d} = {rest} // n{d}")
            rest = f"r{d}"

    def address(prefix: str, cls: str) -> str:
        base = " + ".join(f"i{d} * {prefix}_{d}" for d in range(rank - 1)) or "0"
        return base + {"0": " + offs * 0", "1": " + offs", "s": f" + offs * {prefix}_{rank - 1}"}[cls]

    for i, opnd in enumerate(operands):
        load = f"al.load(X{i} + {address(f's{i}', opnd.last_stride)}, mask=mask, other=0)"
        lines.append(f"    x{i} = ({load} != 0).to(al.float32)" if opnd.is_bool else f"    x{i} = {load}.to(al.float32)")
    lines += [f"    {stmt}" for stmt in body]
    for j, ((value, dtype), cls) in enumerate(zip(results, result_strides)):
        where = f"Y{j} + {address(f't{j}', cls)}"
        if dtype == "bool":
            lines.append(f"    al.store({where}, al.where({value} != 0.0, 1, 0).to(al.uint8), mask=mask)")
        else:
            lines.append(f"    al.store({where}, ({value}).to({dtype}), mask=mask)")
    return "import alloy as al\n\n\n" + "\n".join(lines) + "\n"


def load_kernel(source: str, name: str):
    """The `@al.kernel` defined by `source`, written once to the cache folder so that errors and
    `al.inspect` point at a real file and line."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    folder = al.config.get().cache_dir / "torch"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}_{digest}.py"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.{uuid.uuid4().hex}.tmp")  # processes compile the same kernels
        tmp.write_text(source)
        tmp.replace(path)
    spec = importlib.util.spec_from_file_location(f"alloy_torch_generated.{name}_{digest}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)

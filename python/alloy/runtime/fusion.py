"""Vertical fusion of a chain of pending launches (runtime/lazy.py's PendingLaunch) into one kernel,
proved on the tile IR.

The chain's kernels are generated into one tile-IR function: each one's body in turn, over the
concatenation of their parameters (so one launch passes every kernel's argument slots). For each
link, producer -> consumer through the producer's one output buffer, the fusion is legal when

- the producer stores to that output exactly once, at the top level of its body;
- every load of the consumer from that buffer is at its top level, through a pointer and a mask that
  are the *same expression* as the store's: the same ops over the same program ids, constants and
  launch values (two parameters are the same when the launch binds them the same value, or the same
  buffer), so each program reads exactly the elements it has just stored, and no program reads
  another's (no cross-program dependence);
- nothing else uses the buffer (checked after the loads are replaced and dead code is removed).

Each such load then reads the stored value (`other` where masked off), the store goes, and the
intermediate buffer is never allocated. Both kernels must be tile kernels on the same grid. A chain
that fails any test runs unfused, launch by launch. Fused kernels are compiled once per chain of
specialisations and equalities, and cached like any kernel.
"""
from __future__ import annotations

from .buffer import AlloyBuffer

_FAILED = object()
_compiled: dict = {}  # chain key -> Compiled, or _FAILED


# ------------------------------------------------------------------ the chain's identity
def _identities(chain: list) -> list:
    """One hashable per argument slot of the chain: what the launch binds there (a buffer's identity,
    an intermediate output's producer and name, or a dimension's or scalar's value)."""
    index = {id(n): i for i, n in enumerate(chain)}
    out = []
    for i, node in enumerate(chain):
        slots, _ = node.slots(allocate=False)
        for s, value in zip(node.compiled.slots, slots):
            if s.kind != "ptr":
                out.append(("value", s.kind, value))
                continue
            v = node.bound[s.param]
            if v is None:  # this node's own output
                out.append(("output", i, s.param))
            elif isinstance(v, AlloyBuffer) and v.pending is not None and id(v.pending) in index:
                producer = v.pending
                name = next(n for n in producer.outputs if producer.output_buffer(n) is v)
                out.append(("output", index[id(producer)], name))
            else:
                out.append(("buffer", id(v)))
    return out


def _classes(identities: list) -> tuple:
    first: dict = {}
    return tuple(first.setdefault(x, i) for i, x in enumerate(identities))


def fused_kernel(chain: list):
    """The Compiled fused kernel of `chain`, or None when fusing it is not legal."""
    from .cache import cache_key, host_cpu
    from .specializations import compiler_fingerprint

    identities = _identities(chain)
    classes = _classes(identities)
    key = (tuple(n.compiled.key for n in chain), classes)
    hit = _compiled.get(key)
    if hit is None:
        hit = _build_and_compile(chain, classes, cache_key("fused", key, compiler_fingerprint(), host_cpu()))
        _compiled[key] = hit
    return None if hit is _FAILED else hit


def fused_module(chain: list, classes: tuple | None = None):
    """(context, module) of the fused tile IR of `chain`, or (context, None) when it is not legal."""
    from ..dialects import tile
    from ..frontend import codegen
    from mlir import ir
    from mlir.dialects import func

    classes = classes if classes is not None else _classes(_identities(chain))
    ctx = tile.new_context()
    with ctx, ir.Location.unknown():
        funcs = []
        for node in chain:
            module, _ = codegen.generate(node.kernel.source, node.spec)
            f = tile.kernel_funcs(module.operation)[0]
            if "tile.threads" in f.attributes:
                return ctx, None
            funcs.append((module, f))
        types = [a.type for _, f in funcs for a in f.arguments]
        names = "_".join(n.kernel.__name__ for n in chain)
        module = ir.Module.create()
        with ir.InsertionPoint(module.body):
            fn = func.FuncOp(f"fused_{names}", ir.FunctionType.get(types, []))
            fn.attributes["tile.kernel"] = ir.UnitAttr.get()
            entry = fn.add_entry_block()
            with ir.InsertionPoint(entry):
                ret = func.ReturnOp([])
        starts, offset = [], 0
        for _, f in funcs:
            body = f.regions[0].blocks[0]
            starts.append(offset)
            for i, a in enumerate(body.arguments):
                a.replace_all_uses_with(entry.arguments[offset + i])
            for op in list(body.operations)[:-1]:
                op.operation.move_before(ret)
            offset += len(body.arguments)
        gone = []  # the intermediate buffers' parameters: unused once the links are fused
        for i in range(1, len(chain)):
            args = _fuse_link(chain, i, starts, classes, entry, fn)
            if args is None:
                return ctx, None
            gone += args
        from ..passes.pipeline import run_passes

        run_passes(module.operation, ("tile-canonicalize",))
        if any(next(iter(a.uses), None) is not None for a in gone) or not module.operation.verify():
            return ctx, None
    return ctx, module


def _build_and_compile(chain, classes, key: str):
    from ..passes.errors import LoweringError
    from ..targets.cpu import compile_tile_module
    from .specializations import _compiled as compiled_of, kernel_cache

    cache = kernel_cache()
    hit = cache.get(key)
    slots = tuple(s for n in chain for s in n.compiled.slots)
    if hit is None:
        ctx, module = fused_module(chain, classes)
        if module is None:
            return _FAILED
        with ctx:
            try:
                art = compile_tile_module(module)
            except LoweringError:
                return _FAILED
        hit = cache.put(key, art.shared_object, _metadata(chain, art.entry, slots).to_json())
    return compiled_of(hit.fn_addr, _metadata(chain, "", slots), key)


def _metadata(chain, entry: str, slots):
    from ..frontend.launch_metadata import LaunchMetadata

    return LaunchMetadata(entry, "+".join(n.kernel.__name__ for n in chain), slots, {}, (), {})


# ------------------------------------------------------------------ the proof
_VIEWS = ("tile.addptr", "tile.splat", "tile.broadcast", "tile.expand_dims", "tile.reshape")


def _root(v):
    """The function argument a pointer (tile) derives from through addptr/splat/broadcast, else None."""
    from mlir import ir

    while True:
        if isinstance(v, ir.BlockArgument):
            return v
        op = v.owner.operation if hasattr(v.owner, "operation") else v.owner
        if op.name not in _VIEWS:
            return None
        v = op.operands[0]


def _keyer(entry, classes):
    from mlir import ir

    args = {a: i for i, a in enumerate(entry.arguments)}
    memo: dict = {}

    def key(v):
        if v in memo:
            return memo[v]
        if isinstance(v, ir.BlockArgument):
            k = ("arg", classes[args[v]]) if v in args else ("block-arg", id(v))
        else:
            op = v.owner.operation if hasattr(v.owner, "operation") else v.owner
            attrs = tuple(sorted((k, str(op.attributes[k])) for k in op.attributes))
            k = (op.name, attrs, str(v.type), tuple(key(o) for o in op.operands),
                 [r for r in op.results].index(v))
        memo[v] = k
        return k

    return key


def _ops(fn, names):
    out = []
    from mlir import ir

    def visit(o):
        if o.name in names:
            out.append(o)
        return ir.WalkResult.ADVANCE

    fn.operation.walk(visit)
    return out


def _fuse_link(chain, i: int, starts, classes, entry, fn):
    """Replace consumer chain[i]'s loads of producer chain[i-1]'s output by the stored values; the
    function arguments of that buffer (None when the link is not legal)."""
    from mlir import ir
    from mlir.dialects import arith

    from ..dialects import tile

    producer, consumer = chain[i - 1], chain[i]
    (out_name,) = producer.shapes
    p_slot = next(k for k, s in enumerate(producer.compiled.slots) if s.kind == "ptr" and s.param == out_name)
    out_arg = entry.arguments[starts[i - 1] + p_slot]
    buf = producer.output_buffer(out_name)
    in_args = [entry.arguments[starts[i] + k] for k, s in enumerate(consumer.compiled.slots)
               if s.kind == "ptr" and consumer.bound.get(s.param) is buf and buf is not None]
    if not in_args:
        return None
    key = _keyer(entry, classes)
    top = [o.operation for o in entry.operations]
    stores = [o for o in _ops(fn, ("tile.store", "tile.atomic_rmw", "tile.atomic_cas")) if _root(o.operands[0]) == out_arg]
    if len(stores) != 1 or stores[0].name != "tile.store" or stores[0] not in top:
        return None
    store = stores[0]
    s_ops = list(store.operands)
    s_ptr, s_val, s_mask = s_ops[0], s_ops[1], (s_ops[2] if len(s_ops) > 2 else None)
    loads = [o for o in _ops(fn, ("tile.load",)) if _root(o.operands[0]) in in_args]
    if not loads:
        return None
    for ld in loads:
        ptr, mask, other = tile.load_operands(ld)
        if ld not in top or key(ptr) != key(s_ptr) or (mask is None) != (s_mask is None) or \
                (mask is not None and key(mask) != key(s_mask)) or ld.results[0].type != s_val.type:
            return None
    for ld in loads:
        ptr, mask, other = tile.load_operands(ld)
        value = s_val
        if mask is not None:
            with ir.InsertionPoint(ld), ld.location:
                if other is None:
                    t = s_val.type
                    elem = tile.element_type(t)
                    zero = ir.FloatAttr.get(elem, 0.0) if not isinstance(elem, ir.IntegerType) else \
                        ir.IntegerAttr.get(elem, 0)
                    other = arith.constant(t, ir.DenseElementsAttr.get_splat(t, zero)) \
                        if isinstance(t, ir.RankedTensorType) else arith.constant(t, zero)
                value = arith.select(mask, s_val, other)
        ld.results[0].replace_all_uses_with(value)
        ld.erase()
    store.erase()
    return [out_arg] + in_args

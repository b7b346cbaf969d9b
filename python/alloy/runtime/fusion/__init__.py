"""Vertical fusion of a group of pending launches (runtime/lazy.py's PendingLaunch: a chain, a diamond or
a tree, producers first) into one kernel, proved on the tile IR.

The group's kernels are generated into one tile-IR function: each one's body in turn, over the
concatenation of their parameters (so one launch passes every kernel's argument slots). Each producer,
linked to the later kernels that read one of its outputs, fuses in the first of three ways that the IR
proves legal:

- same iteration space (same_space.py): on the same grid, the consumers load exactly what each program
  of the producer has just stored; the bodies stay;
- prologue (pointwise.py): the producer is pointwise and covers its output; its body is recomputed at
  each of the consumers' loads of the buffer, at their tile shapes, and goes;
- epilogue (pointwise.py): the one consumer is pointwise and covers its output, the producer covers
  the buffer; the consumer's body is computed at each of the producer's stores of it, and goes.

Nothing else may use the buffer (checked once the links are fused and dead code is removed); its store
goes and it is never allocated. The bodies that stay must share one grid: the fused launch's. A group
that fails any test does not fuse (the scheduler tries a smaller one). Fused kernels are compiled once
per group of specialisations, grids and argument equalities, and cached like any kernel.
"""
from __future__ import annotations

import math

from ..buffer import AlloyBuffer
from ..outputs import allocated_by_launch

_FAILED = object()
_compiled: dict = {}  # chain key -> Compiled, or _FAILED
_sources: str | None = None  # digest of this package's sources


def _fingerprint() -> str:
    """Digest of the fusion pass's own sources (not in the compiler's fingerprint): a changed pass never
    reuses a fused kernel from the disk cache that an older one built."""
    global _sources
    if _sources is None:
        import os

        from ..cache import sources_digest

        here = os.path.dirname(os.path.abspath(__file__))
        _sources = sources_digest(here, sorted(os.path.join(here, f) for f in os.listdir(here) if f.endswith(".py")))[:16]
    return _sources


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
            if allocated_by_launch(v):  # this node's own output
                out.append(("output", i, s.param))
            elif isinstance(v, AlloyBuffer) and v.pending is not None and id(v.pending) in index:
                producer = v.pending
                name = next(n for n in producer.outputs if producer.output_buffer(n) is v.base)
                out.append(("output", index[id(producer)], name))
            else:
                out.append(("buffer", id(v)))
    return out


def _classes(identities: list) -> tuple:
    first: dict = {}
    return tuple(first.setdefault(x, i) for i, x in enumerate(identities))


def fused_kernel(chain: list):
    """(Compiled fused kernel, grid) of `chain`, or None when fusing it is not legal."""
    from ..cache import cache_key, host_cpu
    from ..specializations import compiler_fingerprint

    identities = _identities(chain)
    classes = _classes(identities)
    key = (tuple(n.compiled.key for n in chain), tuple(n.grid for n in chain), classes)
    hit = _compiled.get(key)
    if hit is None:
        hit = _build_and_compile(chain, classes, cache_key("fused", key, compiler_fingerprint(), _fingerprint(),
                                                           host_cpu()))
        _compiled[key] = hit
    return None if hit is _FAILED else hit


def linked_output(producer, consumer) -> str | None:
    """The one output of `producer` that `consumer` reads (None when it reads several)."""
    given = {id(v.base) for _, v in consumer.pending_inputs()}
    names = [n for n in producer.shapes if (b := producer.output_buffer(n)) is not None and id(b) in given]
    return names[0] if len(names) == 1 else None


def outputs_read_later(nodes, index: int) -> tuple[str, ...]:
    """The outputs of nodes[index] that later nodes of a fused group read (never allocated)."""
    names = (linked_output(nodes[index], c) for c in nodes[index + 1:])
    return tuple({n for n in names if n is not None})


class Link:
    """The edges out of nodes[index] in a merged group: its one output that later nodes of the group read
    (`consumers`), and the merged function's arguments on both ends."""

    def __init__(self, nodes, index: int, starts: list, classes: tuple, entry, fn) -> None:
        self.nodes, self.index, self.starts, self.classes, self.entry, self.fn = nodes, index, starts, classes, entry, fn
        self.producer = nodes[index]
        reads = [(k, linked_output(self.producer, c)) for k, c in enumerate(nodes) if k > index]
        self.consumer_indices = [k for k, name in reads if name is not None]
        names = {name for _, name in reads if name is not None}
        self.out_name = names.pop() if len(names) == 1 else None
        if self.out_name is None:
            self.in_args = []
            return
        self.out_arg = self.arg_of(index, self.out_name)
        self.out_numel = math.prod(self.producer.shapes[self.out_name])
        buf = self.producer.output_buffer(self.out_name)
        self.in_args = [entry.arguments[starts[k] + j] for k in self.consumer_indices
                        for j, s in enumerate(nodes[k].compiled.slots)
                        if s.kind == "ptr" and _base(nodes[k].bound.get(s.param)) is buf]

    @property
    def consumer(self):
        """The one consumer (epilogues need exactly one)."""
        return self.nodes[self.consumer_indices[0]] if len(self.consumer_indices) == 1 else None

    def arg_of(self, node: int, param: str):
        """The merged function's argument of pointer parameter `param` of nodes[node]."""
        slots = self.nodes[node].compiled.slots
        k = next(k for k, s in enumerate(slots) if s.kind == "ptr" and s.param == param)
        return self.entry.arguments[self.starts[node] + k]

    def producer_declares_cover(self) -> bool:
        return self.producer.kernel.writes_all_outputs


def _base(value):
    return value.base if isinstance(value, AlloyBuffer) else value


def fused_module(chain: list, classes: tuple | None = None):
    """(context, module, grid) of the fused tile IR of `chain`, or (context, None, None) when it is not legal."""
    from ...dialects import tile
    from ...frontend import codegen
    from mlir import ir
    from mlir.dialects import func

    from ...passes.tile_canonicalize import tile_canonicalize
    from . import pointwise, same_space

    classes = classes if classes is not None else _classes(_identities(chain))
    ctx = tile.new_context()
    with ctx, ir.Location.unknown():
        funcs = []
        for node in chain:
            module, _ = codegen.generate(node.kernel.source, node.spec)
            f = tile.kernel_funcs(module.operation)[0]
            if "tile.threads" in f.attributes:
                return ctx, None, None
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
        kept = [True] * len(chain)  # whose body stays in the fused kernel
        grid_of = [n.grid for n in chain]  # the grid of the body computing each node's output
        covers = [n.kernel.writes_all_outputs for n in chain]  # proved or declared to store every element
        gone = []  # the intermediate buffers' parameters: unused once the links are fused
        for i in range(len(chain) - 1):  # each producer, in order, with all its consumers in the group
            link = Link(chain, i, starts, classes, entry, fn)
            if not link.in_args:
                return ctx, None, None
            into = link.consumer_indices
            if all(grid_of[i] == chain[k].grid for k in into) and same_space.fuse(link):
                pass
            elif kept[i] and pointwise.fuse_prologue(link):
                kept[i] = False
            elif link.consumer is not None and pointwise.fuse_epilogue(link, covers[i] or link.producer_declares_cover()):
                kept[into[0]], grid_of[into[0]], covers[into[0]] = False, grid_of[i], True
            else:
                return ctx, None, None
            tile_canonicalize(module.operation)  # drop what the link left unused before the next one looks
            gone += [link.out_arg] + link.in_args
        grids = {n.grid for n, k in zip(chain, kept) if k}
        if len(grids) != 1:
            return ctx, None, None
        if any(next(iter(a.uses), None) is not None for a in gone) or not module.operation.verify():
            return ctx, None, None
    return ctx, module, grids.pop()


def _build_and_compile(chain, classes, key: str):
    from ...passes.errors import LoweringError
    from ...targets.cpu import compile_tile_module
    from ..specializations import _compiled as compiled_of, kernel_cache

    cache = kernel_cache()
    hit = cache.get(key)
    slots = tuple(s for n in chain for s in n.compiled.slots)
    if hit is None:
        ctx, module, grid = fused_module(chain, classes)
        if module is None:
            return _FAILED
        with ctx:
            try:
                art = compile_tile_module(module)
            except LoweringError:
                return _FAILED
        hit = cache.put(key, art.shared_object, _metadata(chain, art.entry, slots, grid).to_json())
    grid = tuple(hit.metadata["launch"]["grid"])
    return compiled_of(hit.fn_addr, _metadata(chain, "", slots, grid), key), grid


def _metadata(chain, entry: str, slots, grid):
    from ...frontend.launch_metadata import LaunchMetadata

    return LaunchMetadata(entry, "+".join(n.kernel.__name__ for n in chain), slots, {}, (), {"grid": list(grid)})

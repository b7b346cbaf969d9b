"""Lazy launches: a CPU launch records a `PendingLaunch` and returns pending `AlloyBuffer`s; reading
one runs what it needs, fusing chains of kernels (runtime/fusion.py) where the tile IR proves it legal.

A launch is deferred when it runs on the CPU target with `alloy.config` `lazy` on (the default), all
its outputs are `al.output`s the runtime allocates, and it stores to nothing else (the compiler
records what a kernel writes). Binding, compiling and output-shape inference happen at the launch,
so its errors are raised there; only the run waits. Any other launch is eager and first runs every
pending launch (`synchronize`), so effects keep their program order. Inputs are read when the
launches run: an input array changed before a result is read is seen changed.

Reading a pending buffer (`realize`) runs its producer: first, as one fused kernel, the longest
chain of pending producers that each feed the next through their one output (runtime/fusion: same
iteration space, pointwise prologues, pointwise epilogues); the chain's intermediate buffers are never
allocated and stay pending (read later, they are computed then). Where the fusion pass cannot prove a
chain legal, its launches run one by one.
"""
from __future__ import annotations

import weakref
from array import array

import numpy as np

from . import fusion, native, profile
from .arguments import output_shape, pack_slots
from .buffer import AlloyBuffer

_live: "weakref.WeakSet[AlloyBuffer]" = weakref.WeakSet()  # pending buffers, for synchronize()


class PendingLaunch:
    """A deferred launch: kernel, grid, bound arguments, specialisation, and its output buffers."""

    def __init__(self, kernel, grid, bound: dict, spec, compiled, shapes: dict):
        self.kernel, self.grid, self.bound, self.spec, self.compiled = kernel, grid, bound, spec, compiled
        self.shapes = shapes  # output name -> shape
        self.outputs: dict = {}  # output name -> weakref of its pending AlloyBuffer

    def realize(self, buffer: AlloyBuffer) -> None:
        run_chain(chain_ending_at(self))

    def set_output_shape(self, name: str, shape: tuple[int, ...]) -> None:
        """Give output `name` the shape its caller knows (a builtin whose stores defeat shape inference),
        before anything reads it."""
        self.shapes[name] = tuple(shape)
        self.output_buffer(name)._shape = tuple(shape)

    def pending_inputs(self):
        """(parameter name, pending AlloyBuffer) of the arguments still to be produced."""
        return [(n, v) for n, v in self.bound.items() if isinstance(v, AlloyBuffer) and v.pending is not None]

    def output_buffer(self, name: str) -> AlloyBuffer | None:
        ref = self.outputs.get(name)
        return ref() if ref is not None else None

    def slots(self, allocate: bool, skip: tuple[str, ...] = ()) -> tuple[list[int], list]:
        """(packed argument slots, arrays to keep referenced while it runs): pending inputs at address 0;
        with `allocate`, outputs other than `skip` get memory (zeroed, as eager launches' do) and their
        buffers become real."""
        from .cpu import CpuRun

        host = self.kernel.host_data(self.bound)
        run = CpuRun(self.compiled, host, self.spec)
        slots, missing = pack_slots(self.compiled, run.arrays, self.bound)
        keep = [host]
        if allocate:
            missing = [i for i in missing if self.compiled.slots[i].param not in skip]
            for i in missing:
                name = self.compiled.slots[i].param
                array = np.zeros(self.shapes[name], self.compiled.outputs[name].np)  # as CpuRun.allocate
                buf = self.output_buffer(name)
                if buf is not None:
                    buf.materialize(array)
                    _live.discard(buf)
                slots[i] = array.__array_interface__["data"][0]
                keep.append(array)
            profile.count(allocations=len(missing))
        return slots, keep

    def finish(self) -> None:
        """The launch has run: release its inputs."""
        self.bound = None


def deferrable(kernel, bound: dict, compiled) -> bool:
    """Whether a bound CPU launch may wait: runtime-allocated outputs only, stores to outputs only."""
    outputs = [p.name for p in kernel.params if p.kind == "output"]
    if not outputs or any(bound[n] is not None for n in outputs):
        return False
    writes = (compiled.launch or {}).get("writes")
    return writes is not None and set(writes) <= set(outputs)


def defer(kernel, grid, bound: dict, device):
    """The pending outputs of a deferred launch (one, or a tuple), or None when it must run now."""
    from .. import config

    if not config.get().lazy or device.target != "cpu" or not grid[0] * grid[1] * grid[2]:
        return None
    if any(p.kind == "output" and bound[p.name] is not None for p in kernel.params):
        return None  # given outputs: the launch writes memory the caller holds, so it runs now
    run = device.start(kernel, bound)
    c = run.compiled
    if not deferrable(kernel, bound, c):
        return None
    slots, missing = pack_slots(c, run.arrays, bound)
    shapes = {c.slots[i].param: output_shape(kernel, c, c.slots[i].param, grid, slots) for i in missing}
    outs = list(pending_outputs(PendingLaunch(kernel, grid, dict(bound), run.spec, c, shapes)).values())
    return outs[0] if len(outs) == 1 else tuple(outs)


def pending_outputs(node: PendingLaunch) -> dict:
    """{output name: its pending AlloyBuffer} of a new deferred launch, in parameter order."""
    outs = {}
    for p in node.kernel.params:
        if p.kind == "output":
            buf = AlloyBuffer.deferred(node.shapes[p.name], node.compiled.outputs[p.name].np, node)
            node.outputs[p.name] = weakref.ref(buf)
            _live.add(buf)
            outs[p.name] = buf
    return outs


def run_chain(chain: list[PendingLaunch]) -> None:
    """Run the last launch of `chain` fused with the longest tail of the chain that fuses legally
    (its other producers run first, as any pending input does), else on its own."""
    fused = None
    while len(chain) > 1:
        fused = fusion.fused_kernel(chain)
        if fused is not None:
            break
        chain = chain[1:]
    if fused is not None:
        fused, grid = fused
    last = chain[-1]
    for i, node in enumerate(chain):  # inputs from outside the fused chain first
        for _, v in node.pending_inputs():
            if i == 0 or v.pending is not chain[i - 1]:
                v.pending.realize(v)
    if fused is None:
        run_single(last)
        return
    slots, keep = [], []
    for i, node in enumerate(chain):  # every output but the chain's intermediates gets memory
        s, k = node.slots(allocate=True, skip=() if node is last else (fusion.linked_output(node, chain[i + 1]),))
        slots += s
        keep += k
    native.launch(fused.fn_addr, _slot_array(slots), *grid)
    profile.count(launches=1, fused=len(chain) - 1)
    last.finish()


def run_single(node: PendingLaunch) -> None:
    """Run one pending launch as it was launched (its pending inputs first)."""
    for _, v in node.pending_inputs():
        v.pending.realize(v)
    slots, keep = node.slots(allocate=True)
    native.launch(node.compiled.fn_addr, _slot_array(slots), *node.grid)
    del keep
    profile.count(launches=1)
    node.finish()


def _slot_array(slots):
    return array("q", slots)


def chain_ending_at(node: PendingLaunch) -> list[PendingLaunch]:
    """The producers that fuse into `node`'s launch, first to last (see the module docstring)."""
    chain = [node]
    while True:
        head = chain[0]
        pending = head.pending_inputs()
        producers = {id(v.pending): v.pending for _, v in pending}
        if len(producers) != 1:
            break
        producer = next(iter(producers.values()))
        if producer in chain or fusion.linked_output(producer, head) is None:
            break
        chain.insert(0, producer)
    return chain



def realize_inputs(bound: dict) -> None:
    """Run what the pending buffers among bound arguments need."""
    for v in bound.values():
        if isinstance(v, AlloyBuffer) and v.pending is not None:
            v.pending.realize(v)


def before_eager(bound: dict) -> None:
    """Before an eager launch: run its pending inputs, and every pending launch that reads (directly or
    through its pending producers) an array this launch is given, which it may write."""
    realize_inputs(bound)
    given = {id(v) for v in bound.values() if not isinstance(v, (int, float, bool, complex, str, type(None)))}
    if not given:
        return
    for buf in list(_live):
        node = buf.pending
        if node is not None and given & _reads(node):
            node.realize(buf)


def _reads(node: PendingLaunch, seen=None) -> set:
    seen = seen if seen is not None else set()
    if id(node) in seen or node.bound is None:
        return set()
    seen.add(id(node))
    out = {id(v) for v in node.bound.values()}
    for _, v in node.pending_inputs():
        out |= _reads(v.pending, seen)
    return out


def synchronize() -> None:
    """Run every pending launch whose results are still referenced."""
    for buf in list(_live):
        if buf.pending is not None:
            buf.pending.realize(buf)
    _live.clear()


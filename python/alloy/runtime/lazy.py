"""Lazy launches: a CPU launch records a `PendingLaunch` and returns pending `AlloyBuffer`s; reading
one runs what it needs, fusing chains of kernels (runtime/fusion.py) where the tile IR proves it legal.

A launch is deferred when it runs on the CPU target with `alloy.config` `lazy` on (the default), all
its outputs are `al.output`s the runtime allocates, and it stores to nothing else (the compiler
records what a kernel writes). Binding, compiling and output-shape inference happen at the launch,
so its errors are raised there; only the run waits. Any other launch is eager and first runs every
pending launch (`synchronize`), so effects keep their program order. Inputs are read when the
launches run: an input array changed before a result is read is seen changed.

Reading a pending buffer (`realize`) runs its producer fused with a group of the pending launches it
needs (runtime/fusion: same iteration space, pointwise prologues, pointwise epilogues): the nearest
MAX_GROUP of them, a chain, a diamond or a tree, and without its earliest sources while the whole
does not fuse. The group's intermediate buffers are never allocated and stay pending (read later, they
are computed then). Where no group fuses, the launch runs on its own, after its pending inputs.
"""
from __future__ import annotations

import weakref
from array import array

import numpy as np

from . import fusion, native, profile
from .arguments import launch_output_shape, pack_slots
from .outputs import allocated_by_launch
from .buffer import AlloyBuffer

_live: "weakref.WeakSet[AlloyBuffer]" = weakref.WeakSet()  # pending buffers, for synchronize()


class PendingLaunch:
    """A deferred launch: kernel, grid, bound arguments, specialisation, and its output buffers."""

    def __init__(self, kernel, grid, bound: dict, spec, compiled, shapes: dict):
        self.kernel, self.grid, self.bound, self.spec, self.compiled = kernel, grid, bound, spec, compiled
        self.shapes = shapes  # output name -> shape
        self.outputs: dict = {}  # output name -> weakref of its pending AlloyBuffer

    def realize(self, buffer: AlloyBuffer) -> None:
        run_fused(self)

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
    if not outputs or not all(allocated_by_launch(bound[n]) for n in outputs):
        return False
    writes = (compiled.launch or {}).get("writes")
    return writes is not None and set(writes) <= set(outputs)


def defer(kernel, grid, bound: dict, device):
    """The pending outputs of a deferred launch (one, or a tuple), or None when it must run now."""
    from .. import config

    if not config.get().lazy or device.target != "cpu" or not grid[0] * grid[1] * grid[2]:
        return None
    if any(p.kind == "output" and not allocated_by_launch(bound[p.name]) for p in kernel.params):
        return None  # given outputs: the launch writes memory the caller holds, so it runs now
    run = device.start(kernel, bound)
    c = run.compiled
    if not deferrable(kernel, bound, c):
        return None
    slots, missing = pack_slots(c, run.arrays, bound)
    shapes = {c.slots[i].param: launch_output_shape(kernel, c, c.slots[i].param, grid, slots, bound)
              for i in missing}
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


def run_fused(node: PendingLaunch) -> None:
    """Run `node` fused with the largest group of its pending producers that fuses legally (the group's
    other pending inputs run first, as any pending input does), else on its own."""
    while node.bound is not None:
        group, fused = fusable_group(node, fusion.fused_kernel)
        if fused is None:
            run_single(node)
            return
        members = {id(n) for n in group}
        for n in group:  # inputs from outside the group first
            for _, v in n.pending_inputs():
                if id(v.pending) not in members:
                    v.pending.realize(v)
        if any(n.bound is None for n in group):
            continue  # one of those ran a member too: choose again
        fn, grid = fused
        slots, keep = [], []
        for i, n in enumerate(group):  # every output but the group's intermediates gets memory
            s, k = n.slots(allocate=True, skip=fusion.outputs_read_later(group, i))
            slots += s
            keep += k
        native.launch(fn.fn_addr, _slot_array(slots), *grid)
        profile.count(launches=1, fused=len(group) - 1)
        node.finish()


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


MAX_GROUP = 8  # pending launches considered for one fused launch


def group_ending_at(node: PendingLaunch) -> list[PendingLaunch]:
    """`node` and the pending launches it needs, nearest first up to MAX_GROUP, in an order where each
    launch comes after its producers (see the module docstring)."""
    members, frontier = [node], [node]
    while frontier and len(members) < MAX_GROUP:
        nxt = []
        for n in frontier:
            for _, v in n.pending_inputs():
                if v.pending not in members and len(members) < MAX_GROUP:
                    members.append(v.pending)
                    nxt.append(v.pending)
        frontier = nxt
    order, done = [], set()

    def visit(n):
        if id(n) in done:
            return
        done.add(id(n))
        for _, v in n.pending_inputs():
            if v.pending in members:
                visit(v.pending)
        order.append(n)

    visit(node)
    return order


def fusable_group(node: PendingLaunch, legal) -> tuple[list, object]:
    """(group, legal(group)) for the largest group ending at `node` that `legal` accepts (it returns None
    for an illegal one), trying the whole group and then without its sources, earliest first; ([node],
    None) when no group of two or more fuses."""
    group = group_ending_at(node)
    while len(group) > 1:
        result = legal(group)
        if result is not None:
            return group, result
        inside = {id(n) for n in group}
        source = next(n for n in group if not any(id(v.pending) in inside for _, v in n.pending_inputs()))
        group = [n for n in group if n is not source]
    return [node], None


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


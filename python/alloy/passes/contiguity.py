"""Contiguity analysis (the AxisInfo idea from Triton) on tile IR.

For an integer or pointer tile, `AxisInfo.strides(v)` gives, per dimension,
the constant difference between neighbouring elements along that dimension
(None where it is not provably constant). `arange` has stride 1, `splat` and
broadcast dimensions stride 0, add/sub add strides, multiplication by a
constant scales them, and any elementwise op keeps a dimension of stride 0.
Loop-carried tiles (scf.for iter_args) are solved optimistically: the init's
strides are assumed and kept when the yielded value reproduces them.

The CPU lowering uses it to pick contiguous vector loads/stores (last stride
1), scalar loads with a broadcast (stride 0) or gathers/scatters.
"""
from __future__ import annotations

from mlir import ir

Strides = tuple  # tuple[int | None, ...]

_SAME = {"arith.extsi", "arith.extui", "arith.trunci", "arith.index_cast", "arith.index_castui"}


def _shape(v: ir.Value):
    t = v.type
    return tuple(t.shape) if isinstance(t, ir.RankedTensorType) else None


def _meet(a: Strides, b: Strides) -> Strides:
    return tuple(x if x == y else None for x, y in zip(a, b))


def _add(a: Strides, b: Strides, sign: int = 1) -> Strides:
    return tuple(None if x is None or y is None else x + sign * y for x, y in zip(a, b))


class AxisInfo:
    """Memoized stride analysis over the values of one function."""

    def __init__(self) -> None:
        self._memo: dict = {}
        self._log: list = []

    # ------------------------------------------------------------ constants
    def constant(self, v: ir.Value) -> int | None:
        """The integer value of a scalar constant or a splat-of-constant tile, else None."""
        owner = v.owner
        if not isinstance(owner, ir.OpView) and not isinstance(owner, ir.Operation):
            return None
        name = owner.operation.name
        if name == "arith.constant":
            attr = owner.attributes["value"]
            if isinstance(attr, ir.IntegerAttr):
                return attr.value
            if isinstance(attr, ir.DenseIntElementsAttr) and attr.is_splat:
                return ir.IntegerAttr(attr.get_splat_value()).value
            return None
        if name == "tile.splat" or name in _SAME:
            return self.constant(owner.operands[0])
        return None

    # -------------------------------------------------------------- strides
    def strides(self, v: ir.Value) -> Strides | None:
        shape = _shape(v)
        if shape is None:
            return None
        if v in self._memo:
            return self._memo[v]
        if isinstance(v, ir.BlockArgument) or isinstance(v.owner, ir.Block):
            return self._block_arg(ir.BlockArgument(v), len(shape))
        s = self._compute(v, shape)
        self._memo[v] = s
        self._log.append(v)
        return s

    def _none(self, rank: int) -> Strides:
        return (None,) * rank

    def _block_arg(self, arg: ir.BlockArgument, rank: int) -> Strides:
        parent = arg.owner.owner
        if parent is None or parent.operation.name != "scf.for" or arg.arg_number == 0:
            self._memo[arg] = self._none(rank)
            return self._memo[arg]
        i = arg.arg_number - 1
        init = parent.operands[3 + i]
        yield_op = list(arg.owner.operations)[-1]
        guess = self.strides(init)
        for _ in range(3):
            self._memo[arg] = guess
            mark = len(self._log)
            got = self.strides(yield_op.operands[i])
            if got == guess:
                return guess
            for key in self._log[mark:]:
                self._memo.pop(key, None)
            del self._log[mark:]
            guess = _meet(guess, got)
        self._memo[arg] = self._none(rank)
        return self._memo[arg]

    def _compute(self, v: ir.Value, shape) -> Strides:
        rank = len(shape)
        op = v.owner
        name = op.operation.name
        ops = list(op.operands)
        if name == "tile.arange":
            return (1,)
        if name == "tile.splat":
            return (0,) * rank
        if name == "arith.constant":
            attr = op.attributes["value"]
            if isinstance(attr, ir.DenseElementsAttr) and attr.is_splat:
                return (0,) * rank
            return self._none(rank)
        if name == "tile.broadcast":
            src_shape = _shape(ops[0])
            src = self.strides(ops[0])
            pad = rank - len(src_shape)
            out = []
            for d in range(rank):
                if d < pad or (src_shape[d - pad] == 1 and shape[d] != 1):
                    out.append(0)
                else:
                    out.append(src[d - pad])
            return tuple(out)
        if name == "tile.expand_dims":
            src = list(self.strides(ops[0]))
            src.insert(ir.IntegerAttr(op.attributes["axis"]).value, 0)
            return tuple(src)
        if name == "tile.trans":
            return tuple(reversed(self.strides(ops[0])))
        if name == "tile.reshape":
            src_shape, src = _shape(ops[0]), self.strides(ops[0])
            kept = [s for n, s in zip(src_shape, src) if n != 1]
            if [n for n in src_shape if n != 1] != [n for n in shape if n != 1]:
                return self._none(rank)
            it = iter(kept)
            return tuple(0 if n == 1 else next(it) for n in shape)
        if name in ("arith.addi", "tile.addptr"):
            a, b = self.strides(ops[0]), self.strides(ops[1])
            if a is None or b is None:
                return self._none(rank)
            return _add(a, b)
        if name == "arith.subi":
            return _add(self.strides(ops[0]), self.strides(ops[1]), -1)
        if name == "arith.muli":
            a, b = self.strides(ops[0]), self.strides(ops[1])
            ca, cb = self.constant(ops[0]), self.constant(ops[1])
            out = []
            for x, y in zip(a, b):
                if x == 0 and y == 0:
                    out.append(0)
                elif ca is not None and y is not None:
                    out.append(ca * y)
                elif cb is not None and x is not None:
                    out.append(cb * x)
                else:
                    out.append(None)
            return tuple(out)
        if name in _SAME:
            return self.strides(ops[0])
        if name == "scf.for":
            arg = op.regions[0].blocks[0].arguments[ir.OpResult(v).result_number + 1]
            return self.strides(arg)
        if name == "scf.if":
            k = ir.OpResult(v).result_number
            outs = []
            for region in op.regions:
                blocks = list(region.blocks)
                if not blocks:
                    return self._none(rank)
                outs.append(self.strides(list(blocks[0].operations)[-1].operands[k]))
            return _meet(outs[0], outs[1])
        if name.startswith("arith.") or name.startswith("math."):
            # elementwise: a dimension along which every tile operand is constant stays constant
            per = [self.strides(o) for o in ops if _shape(o) is not None]
            return tuple(0 if all(p[d] == 0 for p in per) else None for d in range(rank))
        return self._none(rank)

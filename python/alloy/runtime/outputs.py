"""Infer the shape of `al.output` parameters from the kernel's stores.

The frontend records, for each store to an output, an `OutputStore`
(frontend/launch_metadata.py): a symbolic form of its element offset and mask (`("add", a, b)`, `("pid", 0)`, `("arange", 0, 64)`,
`("arg", slot)`, ...). At launch the offsets are bounded with interval
arithmetic over the grid and the argument values; mask conditions such as
`offs < N` tighten the bound of the expression they compare. An offset of
the form `X * S + Y` with `0 <= Y < S` gives a 2-D shape `(max X + 1, S)`.
"""
from __future__ import annotations


class InferenceError(Exception):
    pass


class KnownShape:
    """An `al.output` argument that the launch allocates, with the shape its caller knows (for kernels whose
    stores shape inference cannot bound: stores in loops, offsets known only at run time)."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: tuple[int, ...], dtype) -> None:
        self.shape, self.dtype = tuple(int(s) for s in shape), dtype


def allocated_by_launch(value) -> bool:
    """Whether an `al.output` argument leaves its allocation to the launch (None, or a KnownShape)."""
    return value is None or isinstance(value, KnownShape)


def _bounds_from_mask(mask, ub: dict, lb: dict, env):
    if mask is None or not isinstance(mask, tuple):
        return
    op = mask[0]
    if op == "and":
        _bounds_from_mask(mask[1], ub, lb, env)
        _bounds_from_mask(mask[2], ub, lb, env)
        return
    if op not in ("lt", "le", "gt", "ge"):
        return
    a, b = mask[1], mask[2]
    if op in ("gt", "ge"):  # b < a  /  b <= a
        a, b = b, a
        op = "lt" if op == "gt" else "le"
        try:  # lower bound on the right-hand expression: b >= lo(a) (+1 if strict)
            lo_a = _interval(a, env, {}, {})[0]
            lb[b] = max(lb.get(b, -2**62), lo_a + (1 if op == "lt" else 0))
        except InferenceError:
            pass
        return
    try:
        hi = _interval(b, env, {}, {})[1] - (1 if op == "lt" else 0)
    except InferenceError:
        return
    ub[a] = min(ub.get(a, 2**62), hi)


def _interval(s, env, ub, lb):
    lo, hi = _raw_interval(s, env, ub, lb)
    if s in ub:
        hi = min(hi, ub[s])
    if s in lb:
        lo = max(lo, lb[s])
    return lo, hi


def _raw_interval(s, env, ub, lb):
    if s is None:
        raise InferenceError("depends on values known only at run time")
    op = s[0]
    if op == "const":
        v = int(s[1])
        return v, v
    if op == "arg":
        v = env["args"][s[1]]
        return v, v
    if op == "pid":
        return 0, env["grid"][s[1]] - 1
    if op == "nprog":
        v = env["grid"][s[1]]
        return v, v
    if op == "arange":
        return s[1], s[2] - 1
    a = _interval(s[1], env, ub, lb)
    b = _interval(s[2], env, ub, lb)
    if op == "add":
        return a[0] + b[0], a[1] + b[1]
    if op == "sub":
        return a[0] - b[1], a[1] - b[0]
    if op == "mul":
        c = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
        return min(c), max(c)
    if op == "floordiv" and b[0] > 0:
        return min(a[0] // b[0], a[0] // b[1]), max(a[1] // b[0], a[1] // b[1])
    if op == "mod" and b[0] > 0 and a[0] >= 0:
        return 0, min(a[1], b[1] - 1)
    if op in ("shl",) and b[0] >= 0 and a[0] >= 0:
        return a[0] << b[0], a[1] << b[1]
    raise InferenceError(f"cannot bound '{op}' expressions")


def _terms(s):
    """The operands of a pointer's chain of additions (`C + a + b` → [a, b])."""
    out = []
    while s is not None and s[0] == "add":
        out.append(s[2])
        s = s[1]
    if s is not None and s != ("const", 0):
        out.append(s)
    out = [t for t in reversed(out) if t != ("const", 0)]
    if len(out) == 1 and out[0] is not None and out[0][0] == "add":
        out = [out[0][1], out[0][2]]
    return out


def _shape_of(rec, env):
    ub, lb = {}, {}
    _bounds_from_mask(rec.mask, ub, lb, env)
    lo, hi = _interval(rec.offset, env, ub, lb)
    if lo < 0:
        raise InferenceError(f"its stores may write before the start of the buffer (offset {lo})")
    size = hi + 1
    terms = _terms(rec.offset)
    # `pid * BLOCK + arange(BLOCK)`, or a mask bounding the whole offset, is a 1-D index
    if len(terms) == 2 and rec.offset not in ub:
        for mul, other in ((terms[0], terms[1]), (terms[1], terms[0])):
            if mul is None or mul[0] != "mul":
                continue
            for x, s in ((mul[1], mul[2]), (mul[2], mul[1])):
                try:
                    s_lo, s_hi = _interval(s, env, ub, lb)
                    y_lo, y_hi = _interval(other, env, ub, lb)
                    x_lo, x_hi = _interval(x, env, ub, lb)
                except InferenceError:
                    continue
                if other == ("arange", 0, s_lo):
                    continue
                if s_lo == s_hi and s_lo > 1 and y_lo >= 0 and y_hi == s_lo - 1 and x_lo >= 0:
                    return (x_hi + 1, s_lo)
    return (size,)


def infer_output_shape(name: str, records, grid, args) -> tuple[int, ...]:
    """Shape of output `name` for one launch (grid: 3 ints; args: slot values as ints)."""
    recs = [r for r in records if r.param == name]
    if not recs:
        raise InferenceError(f"the kernel never stores to output '{name}'")
    env = {"grid": grid, "args": args}
    shapes = [_shape_of(r, env) for r in recs]
    if all(s == shapes[0] for s in shapes):
        return shapes[0]
    size = 0
    for s in shapes:
        n = 1
        for d in s:
            n *= d
        size = max(size, n)
    return (size,)

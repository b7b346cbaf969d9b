"""Register-only broadcasts between blocked layouts (layout.py).

A `tile.broadcast` moves no data when every thread already holds each source
element its destination registers need, at a source register index that is
the same in every thread: `[ROWS, 1] -> [ROWS, C]` of a row-reduction result
(held whole by every thread when ROWS <= vec), or `[1, C] -> [ROWS, C]` of a
row loaded once when C is a multiple of vec * threads. `register_map` checks
this for every thread at compile time.
"""
from __future__ import annotations

import math

from alloy.passes.simt.layout import Blocked


def _src_index(e: int, shape: tuple, src_shape: tuple) -> int:
    """Flat index in `src_shape` that element e of its broadcast to `shape` reads."""
    pad = len(shape) - len(src_shape)
    idx, stride = 0, 1
    for d in range(len(shape) - 1, pad - 1, -1):
        c = e % shape[d]
        e //= shape[d]
        n = src_shape[d - pad]
        if n != 1:
            idx += c * stride
        stride *= n
    return idx


def register_map(dst: Blocked, src: Blocked, shape: tuple, src_shape: tuple) -> list[int] | None:
    """Source register of each destination register of the broadcast, or None if some thread
    lacks an element or the register index depends on the thread."""
    out = []
    for k in range(dst.regs):
        reg = None
        for t in range(dst.num_threads):
            e = _src_index((t % dst.threads) * dst.vec + dst.offset(k), shape, src_shape)
            if (e // src.vec) % src.threads != t % src.threads:
                return None
            kk = (e // (src.vec * src.threads)) * src.vec + e % src.vec
            if reg not in (None, kk):
                return None
            reg = kk
        out.append(reg)
    return out


def broadcast_regs(lw, regs: list, src_shape: tuple, shape: tuple) -> list | None:
    """This thread's registers of the broadcast of a tile (registers `regs`), or None."""
    if math.prod(shape) > 1 << 16:
        return None
    m = register_map(lw.layout(shape), lw.layout(src_shape), tuple(shape), tuple(src_shape))
    return None if m is None else [regs[k] for k in m]

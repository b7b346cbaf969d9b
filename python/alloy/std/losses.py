"""`al.cross_entropy(logits, labels)`: per-row softmax cross-entropy, streamed over the classes in float32."""
from __future__ import annotations

import alloy as al

from .arrays import INDEX_DTYPES, Call, row_block, shape_of
from .plans import Plans, call_key

CHUNK = 2048


@al.kernel(writes_all_outputs=True)
def cross_entropy_rows(X, Labels, Loss: al.output, n_cols, ignore_index, BLOCK: al.constexpr):
    row = al.program_id(0)
    base = row * n_cols
    label = al.load(Labels + row).to(al.int32)
    m = al.full((BLOCK,), -float("inf"), al.float32)
    s = al.zeros((BLOCK,), al.float32)
    picked = al.zeros((BLOCK,), al.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + al.arange(0, BLOCK)
        x = al.load(X + base + cols, mask=cols < n_cols, other=-float("inf")).to(al.float32)
        m_new = al.maximum(m, x)
        shift = al.where(m_new == -float("inf"), 0.0, m_new)
        s = s * al.exp(m - shift) + al.exp(x - shift)
        m = m_new
        picked += al.where(cols == label, x, 0.0)
    row_max = al.max(m, axis=0)
    lse = row_max + al.log(al.sum(s * al.exp(m - row_max), axis=0))
    loss = lse - al.sum(picked, axis=0)
    al.store(Loss + row, al.where(label == ignore_index, 0.0, loss))


PLANS = Plans()


def cross_entropy(logits, labels, ignore_index: int = -100):
    """Per-row losses -log softmax(logits)[label] (float32, shape logits.shape[:-1]); rows whose label is
    `ignore_index` get 0, as torch's cross_entropy with reduction="none"."""
    key = call_key(logits, labels, options=(int(ignore_index),))
    plan = PLANS.get(key)
    if plan is not None:
        return plan(logits, labels)
    call = Call("cross_entropy")
    x = call.array("logits", logits)
    shape = shape_of(x)
    if len(shape) < 1:
        raise ValueError("al.cross_entropy: logits need a class axis (the last one)")
    lab = call.array("labels", labels, dtypes=INDEX_DTYPES)
    if shape_of(lab) != shape[:-1]:
        raise ValueError(f"al.cross_entropy: labels must have shape {shape[:-1]} (logits without the class axis), "
                         f"got {shape_of(lab)}")
    n_cols = shape[-1]
    rows = len(x.reshape(-1, n_cols)) if n_cols else 0
    loss = call.empty((rows,), "float32")
    if rows and n_cols:
        args = (x.reshape(rows, n_cols), lab.reshape(rows), n_cols, int(ignore_index))
        kwargs = dict(Loss=loss, BLOCK=row_block(n_cols, CHUNK))
        call.launch(cross_entropy_rows, rows, *args, **kwargs)
        PLANS.record_launch(key, cross_entropy_rows, rows, args, kwargs, ("X", "Labels"), {"Loss": shape[:-1]},
                            call.torch_results)
    return call.result(loss, shape[:-1])

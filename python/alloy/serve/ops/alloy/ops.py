"""``AlloyOps``: the op interface on Alloy kernels (CPU target), weights kept quantized.

Each op runs one prepared launch (``al.prepare``): the kernel is specialised and its argument slots
packed the first time a (kernel, constexprs, dtypes) combination is seen; later calls rebind the
arrays and sizes that changed and make one native call, so a decode step costs little more than
its kernels. Outputs are fresh arrays, so a result stays valid however long the model holds it. Decode steps are
captured once per cache and replayed (step_graph.py). One engine thread uses an ``AlloyOps`` at a time.
"""
from __future__ import annotations

import weakref
from typing import Sequence

import numpy as np

import alloy as al
from alloy.std.normalization import layernorm_row_stream, rms_norm_row_stream
from alloy.std.row_softmax import softmax_row_stream
from alloy.tuning import Config, Tuner
from alloy.tuning.autotune import key_text

from ...gguf.codecs import dequantize
from ..base import Ops, RopeStyle, TensorLike
from ..reference import rope_table
from . import kernels
from ..arrays import KV_DTYPES, CudaArrays, DeviceKV, HostArrays
from .matmul_kernels import dense_matvec, quant_matmul, quant_matvec, quant_matvec_rows, quant_matvec_wide
from .step_graph import StepGraph
from .weights import DenseWeight, QuantWeight, repack

ELEMENTWISE_BLOCK = 1024
ROW_BLOCK = 256
MATMUL_MIN_ROWS = 4         # on the GPU, from this many activation rows on the tiled kernel runs
CPU_ROWS_MAX = 96           # on the CPU, up to this many rows the 4-rows-a-program matrix-vector kernel wins
WIDE_GROUPS = 8            # groups a step of the GPU's matrix-vector kernel
SPLIT_CHUNK = 128          # keys per program of the split decode attention
SPLIT_MIN_CAPACITY = 512   # from this cache capacity on, decode attention splits over the keys
MATMUL_TUNER = Tuner("engine_quant_matmul", [Config(BM=bm, BN=bn) for bm in (64, 32, 16) for bn in (32, 64, 16)],
                     measure_on_miss=False)
"""Blocks of the prefill kernel per weight layout and shape; measured by ``alloy tune MODEL`` only."""


def matmul_key(w: QuantWeight, m: int) -> str:
    """The tuning key of a prefill product: weight shape and layout, activation rows up to 64."""
    return key_text([w.shape[0], w.shape[1], min(64, _pow2(m)), w.qtype, *w.layout])
                  # from this many activation rows on, the tiled kernel (codes converted once)


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


class AlloyOps(Ops):
    """Float32 activations, quantized weights, every op an Alloy kernel.

    Decoding batches (``batched_decode``): on the CPU the matrix-vector kernel takes up to four
    activation rows a program, dequantising each group once for all of them, and batch steps are
    captured and replayed like single ones."""

    batched_decode = True

    def __init__(self, device: str = "cpu", capture_steps: bool = True, arrays=None, kv: str = "f16") -> None:
        """``device``: ``cpu`` (numpy arrays, the CPU target) or ``cuda`` (torch CUDA tensors, the CUDA
        target); ``arrays`` overrides where the arrays live (compile-only runs bind host arrays to the
        CUDA target); ``capture_steps``: capture and replay decode steps; ``kv``: what the KV cache
        stores (:data:`~alloy.serve.ops.arrays.KV_DTYPES`)."""
        if device not in ("cpu", "cuda"):
            raise ValueError(f"the compiled engine runs on 'cpu' or 'cuda', not {device!r}")
        if kv not in KV_DTYPES:
            raise ValueError(f"KV cache type {kv!r} is not one of {', '.join(KV_DTYPES)}")
        self.kv_dtype = KV_DTYPES[kv]
        self.arrays = arrays or (HostArrays() if device == "cpu" else CudaArrays())
        self.target = device
        self._prepared: dict = {}
        self._capture = capture_steps
        self._graphs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # KVCache -> {tokens: StepGraph}
        self._batch_graph: tuple[tuple, StepGraph] | None = None
        self._last_shape: tuple | None = None   # the caches and token count of the latest uncaptured step   # the latest batch's caches and graph
        self._recording: StepGraph | None = None
        self._blocks: dict[str, tuple[int, int]] = {}
        self._ones: dict[int, np.ndarray] = {}
        self._zeros: dict[int, np.ndarray] = {}

    @property
    def device(self) -> str:
        """Where the arrays live: ``cpu`` or ``cuda``."""
        return self.arrays.device

    # --- launching -------------------------------------------------------------------------------
    def _run(self, key: tuple, kernel, grid: tuple, consts: dict, **args):
        """Launch ``kernel`` over ``grid``; ``key`` names its constexprs and argument dtypes. Returns the
        prepared launch (while a step is being captured, one of its own)."""
        if self.target != self.arrays.device:  # compile-only: host arrays bound to the GPU target
            kernel.launch(grid, (), {**args, **consts}, target=self.target)
            return None
        if self._recording is not None:
            launch = al.prepare(kernel, grid, target=self.target, **args, **consts)
            launch.run()
            self._recording.record(launch)
            return launch
        launch = self._prepared.get(key)
        if launch is None:
            launch = self._prepared[key] = al.prepare(kernel, grid, target=self.target, **args, **consts)
            launch.run()
        else:
            launch.rebind(**args).run(grid + (1,) * (3 - len(grid)))
        return launch

    def _patch(self, patch) -> None:
        """Register ``patch(tokens, delta)`` with the step being captured, if any: it moves the step's
        token-dependent inputs to ``tokens`` and its positions ``delta`` past the captured ones."""
        if self._recording is not None:
            self._recording.patches.append(patch)

    # --- whole steps -----------------------------------------------------------------------------
    def decode_step(self, step, token: int, cache):
        """Capture the first step on ``cache`` (see step_graph.py), replay it for the next ones."""
        return self._replayed(lambda ids, caches: step(ids[0], caches[0]), [token], [cache])

    def decode_batch_step(self, step, tokens, caches):
        """As :meth:`decode_step` for a batch: the graph stays valid while the same caches advance together."""
        return self._replayed(step, tokens, caches)

    def decode_tokens_step(self, step, tokens, cache):
        """As :meth:`decode_step` for a few tokens of one sequence (a speculative draft's verification)."""
        return self._replayed(lambda ids, caches: step(ids, caches[0]), tokens, [cache])

    def _replayed(self, step, tokens, caches):
        if not self._capture or self.target != self.arrays.device:
            return step(list(tokens), caches)
        n = len(tokens) if len(caches) == 1 else 1   # new positions per cache
        for cache in caches:
            for kv in cache.layers:
                kv.ensure(cache.length + n)
        key = tuple(caches)
        lengths = np.array([cache.length for cache in caches])
        generations = tuple(kv.generation for cache in caches for kv in cache.layers)
        if len(key) == 1:
            graph = self._graphs.get(key[0], {}).get(n)
        else:
            same = self._batch_graph is not None and len(self._batch_graph[0]) == len(key) and all(
                a is b for a, b in zip(self._batch_graph[0], key))
            graph = self._batch_graph[1] if same else None
        ids = np.asarray(tokens, np.int32)
        if graph is not None and graph.generations == generations:
            deltas = lengths - graph.lengths
            if (deltas == deltas[0]).all():
                return self.arrays.copy(graph.replay(ids, int(deltas[0])))
        shape = (tuple(map(id, key)), n)
        if (len(key) > 1 or n > 1) and shape != self._last_shape:
            self._last_shape = shape   # capture a batch or a draft's shape only once it repeats: a capture
            return step(list(tokens), caches)   # costs more than a plain step, and members come and go
        self._recording = graph = StepGraph(generations, lengths)
        try:
            logits = step(list(tokens), caches)
        finally:
            self._recording = None
        graph.finish(logits)
        if len(key) == 1:
            self._graphs.setdefault(key[0], {})[n] = graph
        else:   # one batch graph at a time: the batch's members change as requests come and go
            self._batch_graph = (key, graph)
        return self.arrays.copy(logits)

    def _ones_of(self, n: int) -> np.ndarray:
        if n not in self._ones:
            self._ones[n] = self.arrays.upload(np.ones(n, np.float32))
        return self._ones[n]

    def _zeros_of(self, n: int) -> np.ndarray:
        if n not in self._zeros:
            self._zeros[n] = self.arrays.upload(np.zeros(n, np.float32))
        return self._zeros[n]

    # --- parameters ------------------------------------------------------------------------------
    def weight(self, tensor: TensorLike) -> QuantWeight | DenseWeight:
        w = repack(tensor)
        return w if self.arrays.device == "cpu" else w.to(self.arrays)

    def vector(self, tensor: TensorLike | np.ndarray):
        values = tensor if isinstance(tensor, np.ndarray) else dequantize(tensor.data, tensor.qtype, tensor.shape)
        return self.arrays.upload(np.asarray(values, dtype=np.float32))

    def kv_buffer(self, max_tokens: int, n_head_kv: int, head_dim_k: int, head_dim_v: int) -> DeviceKV:
        return DeviceKV(self.arrays, max_tokens, n_head_kv, head_dim_k, head_dim_v, self.kv_dtype)

    # --- data movement ---------------------------------------------------------------------------
    def embedding(self, table, ids: Sequence[int]) -> np.ndarray:
        host = np.asarray(ids, dtype=np.int32)
        n_rows, n_cols = table.shape
        if host.size and (host.min() < 0 or host.max() >= n_rows):
            bad = host[(host < 0) | (host >= n_rows)][0]
            raise ValueError(f"token id {int(bad)} is outside the vocabulary [0, {n_rows})")
        idx = self.arrays.upload(host)
        y = self.arrays.empty((len(host), n_cols))
        if isinstance(table, DenseWeight):
            self._patch(lambda tokens, delta: self.arrays.write(idx, tokens))
            self._run(("rows", table.layout), kernels.dense_rows, (len(idx),), {"BK": ROW_BLOCK}, Ids=idx, W=table.data, Y=y, K=n_cols)
            return y
        self._patch(lambda tokens, delta: self.arrays.write(idx, tokens))
        self._run(("rows", table.layout), kernels.quant_rows, (len(idx),), self._quant_consts(table), Ids=idx,
                  **self._quant_arrays(table), Y=y, NP=table.scales.shape[1], K=n_cols)
        return y

    def reshape(self, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return x.reshape(shape)

    def take_rows(self, x: np.ndarray, rows: slice) -> np.ndarray:
        return x[rows]  # rows of a C-contiguous array: a contiguous view

    def concat_rows(self, parts):
        """The parts copied by kernels into one array (so a captured step replays the copies too)."""
        parts = [self.arrays.contiguous(p) for p in parts]
        rows = [p.shape[0] for p in parts]
        y = self.arrays.empty((sum(rows),) + tuple(parts[0].shape[1:]))
        n_cols = self.arrays.size(parts[0]) // rows[0]
        block = min(ROW_BLOCK, _pow2(n_cols))
        lo = 0
        for part, n in zip(parts, rows):
            self._run(("column_block", block), kernels.column_block, (n,), {"BLOCK": block},
                      X=part.reshape(n, n_cols), Y=y[lo:lo + n].reshape(n, n_cols), n_cols=n_cols, stride=n_cols,
                      start=0)
            lo += n
        return y

    def to_numpy(self, x) -> np.ndarray:
        return self.arrays.download(x)

    # --- linear algebra --------------------------------------------------------------------------
    @staticmethod
    def _quant_consts(w: QuantWeight) -> dict:
        return {"IB": w.rows, "G": w.group, "NIBBLES": w.nibble_bias is not None, "BIAS": w.nibble_bias or 0,
                "HAS_OFFSET": w.offsets is not None, "SUB": w.groups_per_block}

    @staticmethod
    def _quant_arrays(w: QuantWeight) -> dict:
        """The weight's arrays as the kernels take them (absent ones stand in as the scales: unread)."""
        return {"Codes": w.codes, "Scales": w.scales, "Offsets": w.scales if w.offsets is None else w.offsets,
                "BlockScales": w.scales if w.block_scales is None else w.block_scales,
                "BlockOffsets": w.scales if w.block_offsets is None else w.block_offsets}

    def _matmul_blocks(self, w: QuantWeight, m: int) -> tuple[int, int]:
        """``(BM, BN)`` of the prefill kernel: the tuned winner (``alloy tune MODEL``), else the nearest
        tuned shape's, else the default."""
        key = matmul_key(w, m)
        blocks = self._blocks.get(key)
        if blocks is None:
            config = MATMUL_TUNER.choose("cpu", key, run=None)
            blocks = self._blocks[key] = (config.constexprs["BM"], config.constexprs["BN"])
        return blocks

    def matmul(self, x: np.ndarray, w, bias: np.ndarray | None = None) -> np.ndarray:
        n_out, n_in = w.shape
        x = self.arrays.contiguous(x)
        if x.shape[-1] != n_in:
            raise ValueError(f"matmul of {x.shape} by weight {w.name!r} {w.shape}: inner sizes differ")
        m = self.arrays.size(x) // n_in
        x = x.reshape(m, n_in)
        y = self.arrays.empty((m, n_out))
        if isinstance(w, DenseWeight):
            grid = (al.cdiv(n_out, 4), m)
            self._run(("matvec", w.layout), dense_matvec, grid, {"BN": 4, "BK": 64}, X=x, W=w.data, Y=y, M=m, N=n_out, K=n_in)
        elif m < MATMUL_MIN_ROWS and self.target == "cuda":
            self._run(("matvec_wide", w.layout), quant_matvec_wide, (w.scales.shape[1] // w.rows, m),
                      {**self._quant_consts(w), "GT": WIDE_GROUPS}, X=x, **self._quant_arrays(w), Y=y, M=m, N=n_out,
                      NP=w.scales.shape[1], K=n_in)
        elif m <= CPU_ROWS_MAX and self.target == "cpu":
            whole = m // 4 * 4   # programs of 4 rows, then one launch for the rest: views, nothing copied
            if whole:
                self._matvec_rows(x[:whole], w, y[:whole], 4)
            if whole < m:
                self._matvec_rows(x[whole:], w, y[whole:], m - whole)
        else:
            bm, bn = self._matmul_blocks(w, m)
            self._run(("matmul", bm, bn, w.layout), quant_matmul, (al.cdiv(m, bm), al.cdiv(n_out, bn)),
                      {"BM": bm, "BN": bn, **self._quant_consts(w)}, X=x, **self._quant_arrays(w), Y=y, M=m,
                      N=n_out, NP=w.scales.shape[1], K=n_in)
        return y if bias is None else self.add(y, bias)

    def _matvec_rows(self, x, w: QuantWeight, y, rows: int) -> None:
        """``y = x @ w.T`` for a multiple of ``rows`` activation rows, ``rows`` a program."""
        m, n_in = x.shape
        grid = (w.scales.shape[1] // w.rows, m // rows)
        if rows == 1:
            self._run(("matvec", w.layout), quant_matvec, grid, self._quant_consts(w), X=x, **self._quant_arrays(w),
                      Y=y, M=m, N=w.shape[0], NP=w.scales.shape[1], K=n_in)
        else:
            self._run(("matvec_rows", rows, w.layout), quant_matvec_rows, grid, {**self._quant_consts(w), "R": rows},
                      X=x, **self._quant_arrays(w), Y=y, M=m, N=w.shape[0], NP=w.scales.shape[1], K=n_in)

    # --- elementwise and reductions --------------------------------------------------------------
    def _binary(self, op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = self.arrays.contiguous(a)
        b = self.arrays.contiguous(b)
        if self.arrays.size(a) < self.arrays.size(b):
            a, b = b, a
        if a.shape != b.shape and a.shape[a.ndim - b.ndim:] != b.shape:
            raise ValueError(f"{op} of shapes {a.shape} and {b.shape}: only a trailing-axes broadcast is supported")
        y = self.arrays.empty(a.shape)
        self._run(("binary", op), kernels.binary_op, (al.cdiv(self.arrays.size(a), ELEMENTWISE_BLOCK),),
                  {"OP": op, "BLOCK": ELEMENTWISE_BLOCK}, A=a.reshape(-1), B=b.reshape(-1), Y=y.reshape(-1),
                  n=self.arrays.size(a), period=self.arrays.size(b))
        return y

    def _unary(self, op: str, x: np.ndarray, param: float = 0.0) -> np.ndarray:
        x = self.arrays.contiguous(x)
        y = self.arrays.empty(x.shape)
        self._run(("unary", op), kernels.unary_op, (al.cdiv(self.arrays.size(x), ELEMENTWISE_BLOCK),),
                  {"OP": op, "BLOCK": ELEMENTWISE_BLOCK}, X=x.reshape(-1), Y=y.reshape(-1), n=self.arrays.size(x),
                  param=float(param))
        return y

    def add(self, a, b):
        return self._binary("add", a, b)

    def mul(self, a, b):
        return self._binary("mul", a, b)

    def scale(self, x, s: float):
        return self._unary("scale", x, s)

    def softcap(self, x, cap: float):
        return self._unary("softcap", x, cap)

    def gelu(self, x):
        return self._unary("gelu", x)

    def silu(self, x):
        return self._unary("silu", x)

    def rms_norm(self, x, w, eps: float):
        x = self.arrays.contiguous(x)
        n_cols = x.shape[-1]
        y = self.arrays.empty(x.shape)
        block = min(ROW_BLOCK, _pow2(n_cols))
        rows = self.arrays.size(x) // n_cols
        self._run(("rms_norm", block), rms_norm_row_stream, (rows,), {"BLOCK": block}, X=x.reshape(-1, n_cols),
                  W=self._ones_of(n_cols) if w is None else w, Y=y.reshape(-1, n_cols), R=self.arrays.empty((rows,)),
                  n_cols=n_cols, eps=float(eps))
        return y

    def layer_norm(self, x, w, b, eps: float):
        x = self.arrays.contiguous(x)
        n_cols = x.shape[-1]
        rows = self.arrays.size(x) // n_cols
        y = self.arrays.empty(x.shape)
        stats = self.arrays.empty((2, rows))
        block = min(ROW_BLOCK, _pow2(n_cols))
        self._run(("layer_norm", block), layernorm_row_stream, (rows,), {"BLOCK": block},
                  X=x.reshape(-1, n_cols), W=self._ones_of(n_cols) if w is None else w,
                  B=self._zeros_of(n_cols) if b is None else b, Y=y.reshape(-1, n_cols), Mean=stats[0], Rstd=stats[1], n_cols=n_cols, eps=float(eps))
        return y

    def softmax(self, x):
        x = self.arrays.contiguous(x)
        n_cols = x.shape[-1]
        y = self.arrays.empty(x.shape)
        block = min(ROW_BLOCK, _pow2(n_cols))
        self._run(("softmax", block), softmax_row_stream, (self.arrays.size(x) // n_cols,), {"BLOCK": block},
                  X=x.reshape(-1, n_cols), Y=y.reshape(-1, n_cols), n_cols=n_cols)
        return y

    @staticmethod
    def _kv_scales(kv: DeviceKV) -> dict:
        """The q8_0 scales the attention kernels take (the caches stand in, unread, when not quantized)."""
        return {"Ks": kv.k if kv.k_scale is None else kv.k_scale, "Vs": kv.v if kv.v_scale is None else kv.v_scale}

    def _split_attention(self, q, kv: DeviceKV, out, start: int, group: int, scale: float, window: int,
                         softcap: float):
        """Decode attention split over the cache in ``SPLIT_CHUNK``-key pieces (one program each, all cores
        busy however few KV heads there are), then merged. The split count follows the capacity, so a
        captured step's grid stays valid as the position moves."""
        _, n_head, dk = q.shape
        n_kv, capacity, dv = kv.v.shape
        splits = al.cdiv(capacity, SPLIT_CHUNK)
        bm, dvp = _pow2(group), _pow2(dv)
        part = self.arrays.empty((splits, n_kv, bm, dvp))
        stats = self.arrays.empty((splits, n_kv, 2, bm))
        consts = {"DK": dk, "DV": dv, "DKP": _pow2(dk), "DVP": dvp, "BM": bm, "BN": 32, "WINDOWED": window > 0,
                  "SOFTCAP": softcap > 0, "QUANT": kv.quantized}
        attend = self._run(("split_attention", kv.dtype.name) + tuple(consts.values()), kernels.attention_split,
                           (splits, n_kv), consts, Q=self.arrays.contiguous(q), Kc=kv.k, Vc=kv.v,
                           **self._kv_scales(kv), Part=part,
                           Stats=stats, n_head=n_head, group=group, capacity=capacity, start=int(start),
                           window=int(window), scale=float(scale), cap=float(softcap) if softcap > 0 else 1.0,
                           chunk=SPLIT_CHUNK)
        self._patch(lambda tokens, delta: attend.rebind(start=int(start) + delta))
        merge = {"DV": dv, "DVP": dvp, "BM": bm}
        self._run(("merge_attention",) + tuple(merge.values()), kernels.attention_merge, (n_kv,), merge, Part=part,
                  Stats=stats, O=out, splits=splits, n_kv=n_kv, group=group)
        return out

    # --- fused forms -----------------------------------------------------------------------------
    def fused_weight(self, weights):
        """The rows of weights of one layout stacked (a block of interleaved rows never straddles two)."""
        first = weights[0]
        if any(w is None or type(w) is not type(first) or w.shape[1] != first.shape[1] or w.layout != first.layout
               for w in weights):
            return None
        n_out = sum(w.shape[0] for w in weights)
        name = "+".join(w.name for w in weights)
        if isinstance(first, DenseWeight):
            return DenseWeight(name, (n_out, first.shape[1]), self.arrays.concatenate([w.data for w in weights], 0),
                               first.qtype)
        if any(w.shape[0] % w.rows for w in weights):
            return None

        def stack(field: str, axis: int):
            parts = [getattr(w, field) for w in weights]
            return None if parts[0] is None else self.arrays.concatenate(parts, axis)

        return QuantWeight(name, (n_out, first.shape[1]), stack("codes", 0), stack("scales", 1), stack("offsets", 1),
                           first.group, first.nibble_bias, first.qtype, first.rows, stack("block_scales", 1),
                           stack("block_offsets", 1), first.groups_per_block)

    def split_columns(self, x, sizes):
        n, width = x.shape
        out, start = [], 0
        for size in sizes:
            if n == 1:  # one row: its column blocks are contiguous views
                out.append(x[:, start:start + size])
            else:
                y = self.arrays.empty((n, size))
                block = min(ROW_BLOCK, _pow2(size))
                self._run(("columns", block), kernels.column_block, (n,), {"BLOCK": block}, X=x, Y=y, n_cols=size,
                          stride=width, start=start)
                out.append(y)
            start += size
        return out

    def _gated(self, g, u, n_rows: int, n_cols: int, stride: int, u_offset: int, act: str):
        y = self.arrays.empty((n_rows, n_cols))
        self._run(("gated", act), kernels.gated_rows, (n_rows, al.cdiv(n_cols, ELEMENTWISE_BLOCK)),
                  {"ACT": act, "BLOCK": ELEMENTWISE_BLOCK}, G=g, U=u, Y=y, n_cols=n_cols, stride=stride,
                  u_offset=u_offset)
        return y

    def gated(self, gate, up, act):
        n_cols = gate.shape[-1]
        gate = self.arrays.contiguous(gate).reshape(-1, n_cols)
        up = self.arrays.contiguous(up).reshape(-1, n_cols)
        return self._gated(gate, up, gate.shape[0], n_cols, n_cols, 0, act)

    def gated_stacked(self, gate_up, act):
        n_rows, width = gate_up.shape
        return self._gated(gate_up, gate_up, n_rows, width // 2, width, width // 2, act)

    def add_rms_norm(self, x, y, w, eps, y_norm=None):
        n_cols = x.shape[-1]
        x2 = self.arrays.contiguous(x).reshape(-1, n_cols)
        y2 = self.arrays.contiguous(y).reshape(-1, n_cols)
        s, out = self.arrays.empty(x2.shape), self.arrays.empty(x2.shape)
        block = min(ROW_BLOCK, _pow2(n_cols))
        ones = self._ones_of(n_cols)
        self._run(("residual_norm", y_norm is not None, block), kernels.residual_rms_norm, (x2.shape[0],),
                  {"NORM_R": y_norm is not None, "BLOCK": block}, X=x2, R=y2, RW=ones if y_norm is None else y_norm,
                  W=ones if w is None else w, S=s, Y=out, n_cols=n_cols, eps=float(eps))
        return s.reshape(x.shape), out.reshape(x.shape)

    # --- transformer-specific --------------------------------------------------------------------
    def rope(self, x, positions, *, n_rot: int, base: float, style: RopeStyle, freq_scale: float = 1.0,
             freq_factors=None):
        x = self.arrays.contiguous(x)
        n, heads, hd = x.shape
        if n_rot % 2 or n_rot > hd:
            raise ValueError(f"rope over {n_rot} dims of a {hd}-dim head")
        if style not in ("normal", "neox"):
            raise ValueError(f"unknown rope style {style!r} (expected 'normal' or 'neox')")
        factors = None if freq_factors is None else np.asarray(freq_factors, np.float64).tobytes()
        cos, sin = rope_table(np.asarray(positions, np.int64).tobytes(), n_rot, float(base), float(freq_scale),
                              factors)
        cos = self.arrays.upload(cos.reshape(n, -1).copy())  # copies: a captured step rewrites them
        sin = self.arrays.upload(sin.reshape(n, -1).copy())  # (the table is memoised)

        captured = np.asarray(positions, np.int64)

        def move(tokens, delta):
            table = rope_table((captured + delta).tobytes(), n_rot, float(base), float(freq_scale), factors)
            self.arrays.write(cos, table[0].reshape(n, -1))
            self.arrays.write(sin, table[1].reshape(n, -1))

        self._patch(move)
        y = self.arrays.empty(x.shape)
        consts = {"D": hd, "ROT": n_rot, "NEOX": style == "neox", "HB": _pow2(heads), "HP": _pow2(n_rot // 2),
                  "PB": _pow2(max(1, hd - n_rot))}
        self._run(("rope",) + tuple(consts.values()), kernels.rotary, (n,), consts, X=x, Cos=cos, Sin=sin, Y=y,
                  heads=heads)
        return y

    def attention(self, q, k, v, kv: DeviceKV, start: int, *, scale: float, window: int = 0, softcap: float = 0.0):
        n, n_head, dk = q.shape
        n_kv, dv = k.shape[1], v.shape[2]
        if n_head % n_kv:
            raise ValueError(f"{n_head} query heads do not group over {n_kv} KV heads")
        group = n_head // n_kv
        kv.ensure(start + n)
        capacity = kv.k.shape[1]
        for src, cache, scales, d in ((k, kv.k, kv.k_scale, dk), (v, kv.v, kv.v_scale, dv)):
            block = min(ROW_BLOCK, _pow2(d))
            store = self._run(("cache_store", block, kv.dtype.name), kernels.cache_store, (n, n_kv),
                              {"BLOCK": block, "QUANT": kv.quantized}, Src=self.arrays.contiguous(src), Cache=cache,
                              Scales=cache if scales is None else scales, n_kv=n_kv, capacity=capacity,
                              start=int(start), D=d)
            self._patch(lambda tokens, delta, launch=store: launch.rebind(start=int(start) + delta))
        out = self.arrays.empty((n, n_head, dv))
        if n == 1 and capacity >= SPLIT_MIN_CAPACITY:
            return self._split_attention(q, kv, out, start, group, scale, window, softcap)
        rows = n * group
        bm = min(16, _pow2(rows))
        consts = {"DK": dk, "DV": dv, "DKP": _pow2(dk), "DVP": _pow2(dv), "BM": bm, "BN": 32,
                  "WINDOWED": window > 0, "SOFTCAP": softcap > 0, "QUANT": kv.quantized}
        attend = self._run(("attention", kv.dtype.name) + tuple(consts.values()), kernels.cached_attention,
                  (al.cdiv(rows, bm), n_kv), consts, Q=self.arrays.contiguous(q), Kc=kv.k, Vc=kv.v,
                  **self._kv_scales(kv), O=out, n=n, n_head=n_head,
                  group=group, capacity=capacity, start=int(start), window=int(window), scale=float(scale),
                  cap=float(softcap) if softcap > 0 else 1.0)
        self._patch(lambda tokens, delta: attend.rebind(start=int(start) + delta))
        return out

"""Read GGUF files: metadata as plain Python values, tensors as memory-mapped bytes.

The header is parsed here with a bounds check on every read, so a truncated or
corrupt file gives a ``GGUFError`` naming the file, the byte offset and what was
expected, never a hang or a raw numpy error. (gguf-py's ``GGUFReader`` decodes
arrays one element at a time, ~12 s for a 262k-token vocabulary, and loops on
array lengths that run past the end of the file; it remains the reference the
tests compare against.) Type ids and sizes come from gguf-py's constants.
"""
from __future__ import annotations

import mmap
import os
import pathlib
import struct
from dataclasses import dataclass

import numpy as np
from gguf import GGML_QUANT_SIZES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGMLQuantizationType, GGUFValueType

from . import codecs
from .errors import GGUFError

__all__ = ["GGUFFile", "TensorInfo", "SUPPORTED_ARCHS", "GGUFError"]

SUPPORTED_ARCHS = frozenset({"llama", "qwen2", "qwen3", "gemma3"})
SUPPORTED_VERSIONS = (2, 3)
MAX_DIMS = 4            # GGML_MAX_DIMS
MAX_ARRAY_NESTING = 8

_SCALARS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<u1", GGUFValueType.INT8: "<i1",
    GGUFValueType.UINT16: "<u2", GGUFValueType.INT16: "<i2",
    GGUFValueType.UINT32: "<u4", GGUFValueType.INT32: "<i4",
    GGUFValueType.UINT64: "<u8", GGUFValueType.INT64: "<i8",
    GGUFValueType.FLOAT32: "<f4", GGUFValueType.FLOAT64: "<f8",
    GGUFValueType.BOOL: "<u1",
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True, eq=False)
class TensorInfo:
    """One tensor: ``shape`` in numpy row-major order ((n_out, n_in) for a weight)."""

    name: str
    shape: tuple[int, ...]
    qtype: GGMLQuantizationType
    offset: int              # absolute file offset of the data
    data: np.ndarray         # raw bytes: a zero-copy uint8 view into the mmap

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def n_bytes(self) -> int:
        return int(self.data.size)


class _Cursor:
    """Bounds-checked little-endian reads from a byte buffer."""

    def __init__(self, buf, path: pathlib.Path):
        self.buf = buf
        self.size = len(buf)
        self.path = path
        self.pos = 0

    def fail(self, detail: str, offset: int | None = None):
        raise GGUFError(detail, path=self.path, offset=self.pos if offset is None else offset)

    def need(self, n: int, what: str) -> int:
        start = self.pos
        if n < 0 or start + n > self.size:
            self.fail(f"truncated: expected {what} ({n} bytes) but the file ends at byte {self.size}")
        self.pos = start + n
        return start

    def u32(self, what: str) -> int:
        return _U32.unpack_from(self.buf, self.need(4, what))[0]

    def u64(self, what: str) -> int:
        return _U64.unpack_from(self.buf, self.need(8, what))[0]

    def string(self, what: str) -> str:
        at = self.pos
        n = self.u64(f"length of {what}")
        start = self.need(n, what)
        try:
            return str(self.buf[start:start + n], "utf-8")
        except UnicodeDecodeError as e:
            self.fail(f"{what} is not valid UTF-8 ({e.reason})", at)

    def scalar(self, vtype: GGUFValueType, what: str):
        dt = np.dtype(_SCALARS[vtype])
        start = self.need(dt.itemsize, what)
        value = np.frombuffer(self.buf, dt, 1, start)[0].item()
        if vtype == GGUFValueType.BOOL:
            if value > 1:
                self.fail(f"{what}: bool must be 0 or 1, got {value}", start)
            return bool(value)
        return value

    def value_type(self, what: str) -> GGUFValueType:
        at = self.pos
        raw = self.u32(f"value type of {what}")
        try:
            return GGUFValueType(raw)
        except ValueError:
            self.fail(f"{what}: unknown GGUF value type {raw}", at)

    def value(self, vtype: GGUFValueType, what: str, depth: int = 0):
        if vtype in _SCALARS:
            return self.scalar(vtype, what)
        if vtype == GGUFValueType.STRING:
            return self.string(what)
        return self.array(what, depth)

    def array(self, what: str, depth: int) -> list:
        at = self.pos
        if depth >= MAX_ARRAY_NESTING:
            self.fail(f"{what}: arrays nested deeper than {MAX_ARRAY_NESTING}", at)
        etype = self.value_type(f"elements of {what}")
        count = self.u64(f"length of {what}")
        if etype in _SCALARS:
            dt = np.dtype(_SCALARS[etype])
            start = self.need(count * dt.itemsize, f"{count} {etype.name} elements of {what}")
            values = np.frombuffer(self.buf, dt, count, start)
            if etype == GGUFValueType.BOOL:
                if count and values.max() > 1:
                    self.fail(f"{what}: bool elements must be 0 or 1", start)
                values = values.astype(bool)
            return values.tolist()
        # every string or array element takes at least 8 bytes: reject impossible counts up front
        if count * 8 > self.size - self.pos:
            self.fail(f"truncated: {what} claims {count} {etype.name} elements, more than the "
                      f"{self.size - self.pos} bytes left can hold", at)
        if etype == GGUFValueType.STRING:
            return self._strings(count, what)
        return [self.value(etype, f"{what}[{i}]", depth + 1) for i in range(count)]

    def _strings(self, count: int, what: str) -> list[str]:
        buf, out = self.buf, []
        pos, size = self.pos, self.size
        for i in range(count):
            if pos + 8 > size:
                self.pos = pos
                self.need(8, f"length of {what}[{i}]")
            n = _U64.unpack_from(buf, pos)[0]
            if pos + 8 + n > size:
                self.pos = pos + 8
                self.need(n, f"{what}[{i}]")
            try:
                out.append(str(buf[pos + 8:pos + 8 + n], "utf-8"))
            except UnicodeDecodeError as e:
                self.fail(f"{what}[{i}] is not valid UTF-8 ({e.reason})", pos)
            pos += 8 + n
        self.pos = pos
        return out


class GGUFFile:
    """A memory-mapped GGUF file: ``metadata``, ``tensors`` and ``dequantize``."""

    def __init__(self, path: str | os.PathLike, *, require_supported_arch: bool = False):
        self.path = pathlib.Path(path)
        self._mm = _map(self.path)
        self._buf = np.frombuffer(self._mm, np.uint8) if len(self._mm) else np.zeros(0, np.uint8)
        try:
            self._parse(_Cursor(self._mm, self.path))
        except GGUFError:
            raise
        except (ValueError, OverflowError, IndexError, struct.error, MemoryError) as e:  # defensive
            raise GGUFError(f"malformed GGUF file ({type(e).__name__}: {e})", path=self.path) from e
        if require_supported_arch:
            self.check_arch()

    # -- metadata ---------------------------------------------------------------
    def get(self, key: str, default=None):
        """A metadata value, or ``default`` when the file lacks ``key``."""
        return self.metadata.get(key, default)

    def require(self, key: str):
        """A metadata value; a ``GGUFError`` naming the file and key when it is missing."""
        if key not in self.metadata:
            raise GGUFError(f"missing required metadata key {key!r}", path=self.path)
        return self.metadata[key]

    def arch_get(self, suffix: str, default=None):
        """``metadata[f"{arch}.{suffix}"]``, e.g. ``arch_get("block_count")``."""
        return self.metadata.get(f"{self.arch}.{suffix}", default)

    def arch_require(self, suffix: str):
        """``require(f"{arch}.{suffix}")``."""
        return self.require(f"{self.arch}.{suffix}")

    def check_arch(self) -> str:
        """The architecture, or a ``GGUFError`` when it is not one of ``SUPPORTED_ARCHS``."""
        if self.arch not in SUPPORTED_ARCHS:
            raise GGUFError(f"architecture {self.arch!r} is not supported "
                            f"(supported: {', '.join(sorted(SUPPORTED_ARCHS))})", path=self.path)
        return self.arch

    # -- tensors ----------------------------------------------------------------
    def tensor(self, name: str) -> TensorInfo:
        info = self.tensors.get(name)
        if info is None:
            raise GGUFError(f"no tensor named {name!r} (the file has {len(self.tensors)} tensors)",
                            path=self.path)
        return info

    def evict(self, tensor: TensorInfo) -> None:
        """Let the OS drop the mapped pages of ``tensor``'s bytes (read again from the file if touched), so
        that loading a model does not keep the whole file resident beside its repacked weights."""
        if not isinstance(self._mm, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED") or not tensor.n_bytes:
            return
        end = min(len(self._mm), tensor.offset + tensor.n_bytes)
        inner_start = -(-tensor.offset // mmap.PAGESIZE) * mmap.PAGESIZE   # pages wholly inside the tensor
        inner_end = end // mmap.PAGESIZE * mmap.PAGESIZE if end < len(self._mm) else end
        if inner_end > inner_start:
            self._mm.madvise(mmap.MADV_DONTNEED, inner_start, inner_end - inner_start)

    def dequantize(self, name: str) -> np.ndarray:
        """The tensor ``name`` decoded to float32 of shape ``TensorInfo.shape``."""
        info = self.tensor(name)
        try:
            return codecs.dequantize(info.data, info.qtype, info.shape)
        except GGUFError as e:
            raise GGUFError(f"tensor {name!r}: {e.detail}", path=self.path, offset=info.offset) from e

    def dequantize_rows(self, name: str, rows) -> np.ndarray:
        """Rows of a tensor (indices along its first axis) decoded to float32, e.g. embedding lookups.

        The result has shape ``(*np.shape(rows), *TensorInfo.shape[1:])``; only those rows are read.
        """
        info = self.tensor(name)
        rows = np.asarray(rows)
        if rows.size == 0:
            rows = rows.astype(np.intp)
        n = info.shape[0]
        if len(info.shape) < 2:
            raise GGUFError(f"tensor {name!r} of shape {info.shape} has no rows", path=self.path)
        if rows.dtype.kind not in "iu" or (rows.size and (rows.min() < 0 or rows.max() >= n)):
            raise GGUFError(f"tensor {name!r}: row indices must be integers in [0, {n})", path=self.path)
        picked = info.data.reshape(n, -1)[rows.reshape(-1)]
        out = codecs.dequantize(picked, info.qtype, (rows.size, *info.shape[1:]))
        return out.reshape(*rows.shape, *info.shape[1:])

    def __repr__(self) -> str:
        return f"GGUFFile({str(self.path)!r}, arch={self.arch!r}, tensors={len(self.tensors)})"

    # -- parsing ----------------------------------------------------------------
    def _parse(self, c: _Cursor) -> None:
        magic = c.u32("GGUF magic")
        if magic != GGUF_MAGIC:
            c.fail(f"not a GGUF file: bad magic {magic.to_bytes(4, 'little')!r} (expected b'GGUF')", 0)
        version = c.u32("GGUF version")
        if version not in SUPPORTED_VERSIONS:
            hint = " (a big-endian file?)" if version & 0xFFFF == 0 else ""
            c.fail(f"unsupported GGUF version {version}{hint}; supported: "
                   f"{', '.join(map(str, SUPPORTED_VERSIONS))}", 4)
        self.version = version
        n_tensors = c.u64("tensor count")
        n_kv = c.u64("metadata key/value count")
        # a key/value pair takes >= 13 bytes and a tensor info >= 32: bound the loops by the file size
        if n_kv * 13 + n_tensors * 32 > c.size - c.pos:
            c.fail(f"header claims {n_kv} metadata entries and {n_tensors} tensors, "
                   f"more than the {c.size} byte file can hold", 8)

        self.metadata: dict[str, object] = {}
        self._value_types: dict[str, GGUFValueType] = {}
        for _ in range(n_kv):
            at = c.pos
            key = c.string("metadata key")
            if key in self.metadata:
                c.fail(f"duplicate metadata key {key!r}", at)
            vtype = c.value_type(key)
            self.metadata[key] = c.value(vtype, key)
            self._value_types[key] = vtype

        arch = self.metadata.get("general.architecture")
        if not isinstance(arch, str):
            raise GGUFError("missing required metadata key 'general.architecture' (a string)", path=self.path)
        self.arch: str = arch
        self.alignment = self._alignment()

        infos = [self._tensor_info(c) for _ in range(n_tensors)]
        self.data_offset = -(-c.pos // self.alignment) * self.alignment
        self.tensors: dict[str, TensorInfo] = {}
        for name, shape, qtype, rel, at in infos:
            if name in self.tensors:
                c.fail(f"duplicate tensor name {name!r}", at)
            block, size = GGML_QUANT_SIZES[qtype]
            nbytes = int(np.prod(shape, dtype=object)) // block * size
            start = self.data_offset + rel
            if start + nbytes > c.size:
                c.fail(f"tensor {name!r} ({qtype.name}, shape {shape}) data spans bytes "
                       f"{start}..{start + nbytes} but the file ends at byte {c.size}", at)
            self.tensors[name] = TensorInfo(name, shape, qtype, start, self._buf[start:start + nbytes])
        spans = sorted((info.offset, info.offset + info.n_bytes, info.name) for info in self.tensors.values())
        for (start, end, name), (next_start, _, next_name) in zip(spans, spans[1:]):
            if next_start < end:
                c.fail(f"tensors {name!r} (bytes {start}..{end}) and {next_name!r} (from byte {next_start}) "
                       f"overlap", next_start)

    def _alignment(self) -> int:
        if "general.alignment" not in self.metadata:
            return GGUF_DEFAULT_ALIGNMENT
        value = self.metadata["general.alignment"]
        if self._value_types["general.alignment"] != GGUFValueType.UINT32 or value == 0 or value & (value - 1):
            raise GGUFError(f"general.alignment must be a non-zero power of two (uint32), got {value!r}",
                            path=self.path)
        return value

    def _tensor_info(self, c: _Cursor):
        at = c.pos
        name = c.string("tensor name")
        n_dims = c.u32(f"dimension count of tensor {name!r}")
        if not 1 <= n_dims <= MAX_DIMS:
            c.fail(f"tensor {name!r} has {n_dims} dimensions (expected 1..{MAX_DIMS})", c.pos - 4)
        dims = [c.u64(f"dimension {i} of tensor {name!r}") for i in range(n_dims)]
        if any(d == 0 for d in dims) or int(np.prod(dims, dtype=object)) >= 1 << 62:
            c.fail(f"tensor {name!r} has a bad shape {dims} (ggml order)", at)
        type_at = c.pos
        raw_type = c.u32(f"type of tensor {name!r}")
        try:
            qtype = codecs.qtype_of(raw_type)
        except GGUFError:
            c.fail(f"tensor {name!r} has unknown GGML type id {raw_type}", type_at)
        if qtype not in codecs.SUPPORTED:
            c.fail(f"tensor {name!r} has type {qtype.name}, which Alloy cannot decode (supported: "
                   f"{', '.join(sorted(q.name for q in codecs.SUPPORTED))})", type_at)
        block = GGML_QUANT_SIZES[qtype][0]
        if dims[0] % block:
            c.fail(f"tensor {name!r} ({qtype.name}) row length {dims[0]} is not a multiple of "
                   f"the block size {block}", at)
        off_at = c.pos
        rel = c.u64(f"data offset of tensor {name!r}")
        if rel % self.alignment:
            c.fail(f"tensor {name!r} data offset {rel} is not a multiple of the alignment {self.alignment}",
                   off_at)
        return name, tuple(reversed(dims)), qtype, rel, at


def _map(path: pathlib.Path) -> mmap.mmap | bytes:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                return b""
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise GGUFError(f"cannot open: {e.strerror or e}", path=path) from e

"""What a compiled specialisation tells its launches, typed, and its versioned on-disk (JSON) form.

The compiler makes a `LaunchMetadata`; the kernel cache keeps its JSON next to
the compiled code; launches read it back with `from_json`, which refuses any
other `format` (the cache then compiles again instead of misreading an entry).

An `OutputStore` is one store (or atomic) to an `al.output` parameter: the
symbolic element offset and mask that output-shape inference
(runtime/outputs.py) bounds at launch. Symbolic terms are tuples:
("const", n), ("arg", slot), ("pid", axis), ("nprog", axis), ("arange", start,
end), (op, a, b) for op in add/sub/mul/floordiv/mod/shl, and comparisons
(lt/le/gt/ge, and) in masks; None where the value is known only at run time.
On disk a term is a JSON list of the same items.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..language import dtypes as dt
from .signature import Slot

METADATA_FORMAT = 2  # bump when the JSON form changes


class MetadataFormatError(ValueError):
    """Metadata written by another version of the compiler."""


@dataclass(frozen=True)
class OutputStore:
    """A store to output parameter `param`: its symbolic element offset and mask (None: unknown)."""

    param: str
    offset: tuple | None
    mask: tuple | None


@dataclass(frozen=True)
class LaunchMetadata:
    """The entry symbol, the argument slots, the outputs' dtypes and stores, and target launch fields."""

    entry: str
    kernel: str
    slots: tuple[Slot, ...]
    outputs: dict[str, dt.dtype]
    stores: tuple[OutputStore, ...]
    launch: dict = field(default_factory=dict)  # CUDA: num_threads, shared_bytes, dynamic_shared_bytes, params, arch, atomics

    def to_json(self) -> dict:
        return {
            "format": METADATA_FORMAT,
            "entry": self.entry,
            "kernel": self.kernel,
            "slots": [{"kind": s.kind, "param": s.param, "dim": s.dim, "dtype": s.dtype.name} for s in self.slots],
            "outputs": {k: v.name for k, v in self.outputs.items()},
            "stores": [{"param": r.param, "offset": _term_json(r.offset), "mask": _term_json(r.mask)}
                       for r in self.stores],
            "launch": self.launch,
        }

    @classmethod
    def from_json(cls, data: dict) -> LaunchMetadata:
        if not isinstance(data, dict) or data.get("format") != METADATA_FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise MetadataFormatError(f"launch metadata format {got!r}, expected {METADATA_FORMAT}")
        try:
            return cls(
                entry=data["entry"], kernel=data["kernel"],
                slots=tuple(Slot(s["kind"], s["param"], s["dim"], dt.BY_NAME[s["dtype"]]) for s in data["slots"]),
                outputs={k: dt.BY_NAME[v] for k, v in data["outputs"].items()},
                stores=tuple(OutputStore(s["param"], _term(s["offset"]), _term(s["mask"])) for s in data["stores"]),
                launch=dict(data["launch"]))
        except (KeyError, TypeError, AttributeError) as e:
            raise MetadataFormatError(f"launch metadata is malformed: {e!r}") from None


def _term_json(term):
    return [_term_json(v) for v in term] if isinstance(term, tuple) else term


def _term(data):
    return tuple(_term(v) for v in data) if isinstance(data, list) else data

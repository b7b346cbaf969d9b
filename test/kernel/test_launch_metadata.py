"""The typed launch metadata of a compiled specialisation and its versioned JSON form: a kernel's real
metadata round-trips, and metadata of another format reads as a cache miss (compiled again), not misread."""
import json

import numpy as np
import pytest

import alloy as al
from alloy.frontend.launch_metadata import METADATA_FORMAT, LaunchMetadata, MetadataFormatError, OutputStore


@al.kernel
def rows(x, out: al.output, R, C, BLOCK: al.constexpr = 64):
    r = al.program_id(0)
    c = al.arange(0, BLOCK)
    al.store(out + r * C + c, al.load(x + r * C + c, mask=c < C) * 2.0, mask=c < C)


def _metadata():
    from alloy.compiler import metadata, tile_ir

    x = np.zeros((3, 50), np.float32)
    spec, _ = rows.specialize(rows.bind([x, 3, 50], {}))
    _, _, gen = tile_ir(rows.source, spec)
    return metadata(rows.source, gen, "rows", {"num_threads": 128})


def test_round_trip_through_json():
    meta = _metadata()
    (store,) = meta.stores
    assert isinstance(store, OutputStore) and store.param == "out"
    assert store.offset[0] == "add" and store.mask[0] in ("lt", "and")
    data = json.loads(json.dumps(meta.to_json()))
    assert data["format"] == METADATA_FORMAT
    assert LaunchMetadata.from_json(data) == meta


def test_other_formats_are_refused():
    data = _metadata().to_json()
    with pytest.raises(MetadataFormatError, match="format 1"):
        LaunchMetadata.from_json(dict(data, format=1))
    with pytest.raises(MetadataFormatError, match="malformed"):
        LaunchMetadata.from_json({k: v for k, v in data.items() if k != "slots"})


def test_an_entry_of_another_format_is_compiled_again(cpu_compiles):
    x = np.arange(150, dtype=np.float32).reshape(3, 50)
    np.testing.assert_array_equal(np.asarray(rows[3](x, 3, 50)).reshape(3, 50), x * 2)
    assert len(cpu_compiles) == 1
    import alloy.runtime.specializations as lookup

    cache = lookup.kernel_cache()
    (meta_file,) = cache.directory.glob("*/*.json")
    meta_file.write_text(json.dumps(dict(json.loads(meta_file.read_text()), format=1)))
    rows._compiled.clear()
    lookup._cache = None  # a new process: memory cache empty, disk entry of format 1
    np.testing.assert_array_equal(np.asarray(rows[3](x, 3, 50)).reshape(3, 50), x * 2)
    assert len(cpu_compiles) == 2

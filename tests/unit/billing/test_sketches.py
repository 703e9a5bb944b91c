"""A sketch decoded from bytes answers every quantile as the library's own decoder does, and still merges."""

from __future__ import annotations

import ddsketch.pb.ddsketch_pb2 as pb
from ddsketch import DDSketch
from ddsketch.pb.proto import DDSketchProto
from hypothesis import given
from hypothesis import strategies as st

from tenantgate.billing.records import SKETCH_MAPPING, new_sketch
from tenantgate.billing.sketches import quantile, sketch_from_bytes, sketch_to_bytes


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=300), st.floats(0, 1))
def test_fast_decoding_agrees_with_the_library(values: list[float], q: float) -> None:
    sketch = new_sketch()
    for value in values:
        sketch.add(value)
    data = sketch_to_bytes(sketch)
    proto = pb.DDSketch()
    proto.ParseFromString(data)
    reference = DDSketchProto.from_proto(proto)  # type: ignore[no-untyped-call]
    mine = sketch_from_bytes(data)
    assert mine.count == reference.count == len(values)
    assert quantile(mine, q) == quantile(reference, q)
    mine.merge(reference)
    mine.add(5.0)
    assert mine.count == 2 * len(values) + 1
    assert quantile(sketch_from_bytes(b""), 0.5) is None


@given(st.lists(st.floats(min_value=0.001, max_value=1e6, allow_nan=False), min_size=1, max_size=100), st.floats(0, 1))
def test_a_sketch_of_another_accuracy_decodes_with_its_own_mapping(values: list[float], q: float) -> None:
    """Every sketch of ours shares one mapping; one written with another accuracy keeps its own."""
    coarse = DDSketch(0.05)
    for value in values:
        coarse.add(value)
    decoded = sketch_from_bytes(sketch_to_bytes(coarse))
    assert decoded._mapping.gamma == coarse._mapping.gamma != SKETCH_MAPPING.gamma
    assert quantile(decoded, q) == quantile(coarse, q)
    assert sketch_from_bytes(sketch_to_bytes(new_sketch()))._mapping is SKETCH_MAPPING

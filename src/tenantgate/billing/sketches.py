"""Percentile sketches (DDSketch) to and from bytes, so rollups merge across hours and instances."""

from __future__ import annotations

import ddsketch.pb.ddsketch_pb2 as pb
from ddsketch import DDSketch
from ddsketch.pb.proto import DDSketchProto

from tenantgate.billing.records import new_sketch


def sketch_to_bytes(sketch: DDSketch) -> bytes:
    return bytes(DDSketchProto.to_proto(sketch).SerializeToString())  # type: ignore[no-untyped-call]


def sketch_from_bytes(data: bytes | None) -> DDSketch:
    if not data:
        return new_sketch()
    proto = pb.DDSketch()
    proto.ParseFromString(data)
    sketch: DDSketch = DDSketchProto.from_proto(proto)  # type: ignore[no-untyped-call]
    return sketch


def quantile(sketch: DDSketch, q: float) -> float | None:
    value = sketch.get_quantile_value(q) if sketch.count else None
    return None if value is None else round(float(value), 3)

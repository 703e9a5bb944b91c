"""Percentile sketches (DDSketch) to and from bytes, so rollups merge across hours and instances.

Decoding builds each dense store from its contiguous bin counts in one step (the store's documented
attributes), instead of adding bin by bin: a month's dashboard decodes hundreds of sketches."""

from __future__ import annotations

import math

import ddsketch.pb.ddsketch_pb2 as pb
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.pb.proto import DDSketchProto, KeyMappingProto
from ddsketch.store import DenseStore

from tenantgate.billing.records import SKETCH_MAPPING, new_sketch

OWN_MAPPING = KeyMappingProto.to_proto(SKETCH_MAPPING)  # type: ignore[no-untyped-call]


def sketch_to_bytes(sketch: BaseDDSketch) -> bytes:
    return bytes(DDSketchProto.to_proto(sketch).SerializeToString())  # type: ignore[no-untyped-call]


def _store(proto: pb.Store) -> DenseStore:
    store = DenseStore()
    counts = list(proto.contiguousBinCounts)
    total = math.fsum(counts)
    if total:
        store.bins = counts
        store.offset = proto.contiguousBinIndexOffset
        store.count = total
        store.min_key = store.offset
        store.max_key = store.offset + len(counts) - 1
    return store


def sketch_from_bytes(data: bytes | None) -> BaseDDSketch:
    if not data:
        return new_sketch()
    proto = pb.DDSketch()
    proto.ParseFromString(data)
    mapping = SKETCH_MAPPING
    if proto.mapping != OWN_MAPPING:  # written with another accuracy: its own mapping
        mapping = KeyMappingProto.from_proto(proto.mapping)  # type: ignore[no-untyped-call]
    return BaseDDSketch(mapping, _store(proto.positiveValues), _store(proto.negativeValues), proto.zeroCount)


def quantile(sketch: BaseDDSketch, q: float) -> float | None:
    value = sketch.get_quantile_value(q) if sketch.count else None
    return None if value is None else round(float(value), 3)

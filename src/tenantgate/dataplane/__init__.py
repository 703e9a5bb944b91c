"""The request path: the ASGI edge, parsing, the pipeline, placement, streaming relay.

It receives the narrow services it uses (`deps.DataPlaneDeps`), never the whole gateway.
"""

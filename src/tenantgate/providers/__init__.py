"""Adapters that speak an upstream's dialect. They never import admission, metering or storage."""

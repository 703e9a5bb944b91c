"""Persistent state behind small interfaces: `base.Store`, with `memory` and `sql` implementations."""

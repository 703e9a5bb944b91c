"""Admission control: every limit is reserved atomically before a request runs and settled after."""

"""Billing: versioned prices, GPU-time attribution, and (from usage events) what tenants owe."""

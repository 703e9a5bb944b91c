"""The tenant realm: what a tenant's members manage inside their own tenant (operators too)."""

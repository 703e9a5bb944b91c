"""Tenant-proxy mode: tenantgate in a tenant's own network, in front of a shared installation."""

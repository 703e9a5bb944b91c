"""tenantgate: a multi-tenant LLM inference gateway."""

__version__ = "0.1.0"

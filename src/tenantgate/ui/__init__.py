"""The web UI: server-rendered pages (operator console, tenant dashboard, hosted chat) over the same
services as the management API; changes go through that API with the session's CSRF token."""

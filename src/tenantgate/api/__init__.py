"""The HTTP edge: thin handlers that parse, call one service, and render."""

API = "/api/v1"  # the management API's version; GatewayApp (app.py) also serves it under /admin, its first name

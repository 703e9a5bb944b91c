"""Which deployments can serve a model, and which one a request goes to."""

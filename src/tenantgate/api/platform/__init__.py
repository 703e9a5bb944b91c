"""The platform realm: what operators manage across every tenant."""

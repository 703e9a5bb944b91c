"""The simulated engine: a continuous-batching model calibrated to a 7B model on an A10G, and an
OpenAI-compatible server that runs it in real time. The model also runs in virtual time."""

"""The simulated engine: a continuous-batching model calibrated to a 7B model on an A10G
(research/fairness.md §3) that runs in virtual time, and an OpenAI-compatible server that runs
the same model against the wall clock, with fault injection, for the gateway and its tests."""

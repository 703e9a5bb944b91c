"""Fair scheduling across tenants: the queue disciplines, in-flight budgets and wait forecasts.

The core (`disciplines`, `dispatcher`, `forecast`) is pure and clock-free, so the same code runs in
the gateway (through `queueing`) and over the simulated engine in virtual time (`tenantgate bench
fairness`).
"""

"""`tenantgate bench fairness`: the VTC paper's experiments over the simulated engine in virtual time."""

"""Who calls the management API, what each role may do there, and the record of what was done."""

"""Background work: the RQ drain job, its worker and the scheduler that feeds it."""

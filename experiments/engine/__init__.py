"""The lab's engine: one run's service, load, samples, audit and results, which reports and studies read."""

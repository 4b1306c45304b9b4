"""The lab: seed data, tokens, load tests and TPS reports."""

"""Simulator: seeded shopper foot traffic with exact ground-truth events, for tests, benchmarks and demos."""

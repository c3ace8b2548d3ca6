"""Synthetic CloudTrail data for ``ingester demo``, integration tests and benchmarks (no AWS account needed)."""

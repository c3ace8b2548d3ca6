"""Bytes -> records -> events; pure and synchronous, no I/O."""

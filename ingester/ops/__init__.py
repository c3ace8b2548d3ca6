"""Watching the pipeline: metrics and logs (telemetry), the health endpoint, signal handling.

Low floor: these modules know the pipeline only through the figures it reports, so every stage may use them.
"""

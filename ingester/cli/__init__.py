"""The command line (click): ``ingester run | backfill | check | discover | demo``; the process boundary.

The top floor: commands assemble the pipeline and map its outcome to an exit code (docs/exit-codes.md).
"""

"""``python -m ingester`` == the ``ingester`` console script."""

from ingester.cli import main

main()

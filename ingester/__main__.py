"""``python -m ingester`` == the ``ingester`` console script."""

from ingester.cli.main import main

main()

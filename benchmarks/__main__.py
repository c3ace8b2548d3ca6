"""``python -m benchmarks`` (what scripts/bench.sh runs): see bench.py."""

import sys

from benchmarks.bench import main

sys.exit(main())

"""Discovery: which accounts, which trails, hence which shards; re-run on an interval (see runtime)."""

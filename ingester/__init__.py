"""ingester: an asyncio, high-throughput AWS CloudTrail -> Kafka collector.

The package layout is the pipeline: ``discovery`` (accounts, trails -> shards), ``sources`` (S3 listing and
fetch), ``codec`` (gunzip, decode, normalize, encode; pure), ``sinks`` (Kafka, file), ``checkpoint`` (the
ordered watermark and its store); ``runtime`` composes them and ``cli`` is the entry point.
"""

__version__ = "0.1.0"

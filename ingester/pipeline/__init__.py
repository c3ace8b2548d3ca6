"""The data path's engine: the supervisor and its shard jobs, the workers, the worker processes.

The top floor of the pipeline: it assembles the stages below it (sources, codec, sinks, checkpoint, discovery,
integrity, coordination) into running tasks, and owns every fault boundary (docs/architecture.md).
"""

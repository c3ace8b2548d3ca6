"""What Kafka acknowledged, per shard: the ordered watermark (pure) and its stores."""

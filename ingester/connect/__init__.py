"""Connection setup shared by the data path and the control plane: AWS sessions and roles, Kafka client options.

Below both sources/sinks and discovery/checkpoint/coordination, which all open clients through these.
"""

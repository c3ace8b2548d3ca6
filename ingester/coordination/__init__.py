"""Scale-out: replicas share the shards through Kafka's consumer-group protocol (``[scaleout] enabled``).

    coordination topic (compacted, P partitions)      consumer group ``scaleout.group_id``
      partition p = shard group p:                     each replica (each worker process) is a member;
      the shards with crc32(shard id) % P == p,        the partitions assigned to it are the shards it owns
      and their checkpoint snapshots

- **Ownership** (ownership.py): a replica collects a discovered shard only when the group assigned it the
  shard's partition. Kafka's group coordinator decides; no election of our own. Adding or removing a replica
  (or a replica missing heartbeats for ``session_timeout_ms``) rebalances the partitions.
- **Assignment** (member.py): for each assigned partition p, start the transactional producer
  ``<transactional_id_prefix>-<p>`` (its initialisation fences the previous owner, see below), then read p to its
  end with ``read_committed``, then start the jobs of p's shards from those checkpoints.
- **Revocation**: aiokafka awaits ``on_partitions_revoked`` before rejoining. The replica stops listing the
  revoked shards, waits up to ``revoke_timeout_seconds`` for their in-flight objects to settle, commits their
  checkpoints, and stops the partitions' producers. Objects still unsettled are abandoned: they sit behind the
  committed watermark, so the next owner collects them again (duplicates, never loss).
- **Checkpoints** (committer.py): every ``commit_interval_ms`` the dirty snapshots of each owned partition are
  written to that partition in one transaction of that partition's producer.

Fencing, and what it guarantees. Checkpoint snapshots of partition p are written only by the transactional
producer ``<prefix>-<p>``. A new owner initialises that transactional id *before* reading p; the broker then
bumps the producer epoch, aborts the previous owner's open transaction, and rejects every later transactional
request of the previous owner's producer (``ProducerFenced``). So a paused zombie cannot move a checkpoint after
the new owner read it: the checkpoint a new owner starts from is final, and only ever covers objects whose
records Kafka acknowledged. A fenced replica drops the partition at once (stops its jobs) and the group then
tells it what it owns.

What is not fenced with ``at_least_once``: event records. They go through the ordinary idempotent producer, so
a zombie that wakes up can still send the objects it had in flight, and list and send more, until its next
checkpoint commit fails (at most ``commit_interval_ms`` plus the objects in flight) or its next heartbeat tells
it to rejoin. Those records are duplicates of what the new owner sends (consumers dedup on the message key);
they can never cause loss, because nothing the zombie does can advance a checkpoint any more. With
``exactly_once`` they are fenced too: each group's events are sent in its producer's transactions, with its
checkpoints (transactions.py).

Notifications (announcements.py): a replica's SQS receiver publishes each notified file to the announcements
topic, in its shard group's partition; the owner of that partition hands it to the shard's job.

Every rebalance is *eager* (aiokafka implements no cooperative protocol): every member releases every partition
and is assigned again, so a membership change pauses collection for the time it takes to settle the objects in
flight, and each shard lists again from its checkpoint.
"""

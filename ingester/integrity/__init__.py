"""CloudTrail digest files: prove that ingester collected every log file, and that none was altered.

Each hour CloudTrail writes, per account, region and trail, a digest that lists the log files it delivered with
their SHA-256, signs it (SHA256withRSA, key from cloudtrail:ListPublicKeys) and chains it to the previous
digest. This package is the pure core of using them; fetching digests and wiring the results into the pipeline
and its configuration are the pipeline's:

    digest.py     wire Structs, parse_digest / load_digest_file, where digests live (digest_prefix, chain_id)
    verify.py     signing_string, verify_signature, verify_chain, verify_digest, verify_log_file / _hash
    keys.py       PublicKeySource (the one async seam), CloudTrailPublicKeySource, InMemoryPublicKeySource, KeyRing
    reconcile.py  reconcile(digest, settled_keys) -> Completeness
    events.py     CompletenessEvent and IntegrityAlert, their builders and encoders
    modes.py      IntegrityMode ("off" / "verify" / "enforce"): what each does, and what enforce reroutes
"""

from ingester.integrity.digest import (
    ChainLink,
    Digest,
    DigestFile,
    DigestFormatError,
    LogFileEntry,
    chain_id,
    digest_prefix,
    is_digest_key,
    load_digest_file,
    parse_digest,
)
from ingester.integrity.events import (
    CompletenessEvent,
    IntegrityAlert,
    completeness_event,
    encode_alert,
    encode_completeness,
    integrity_alert,
)
from ingester.integrity.keys import (
    CloudTrailPublicKeySource,
    InMemoryPublicKeySource,
    KeyRing,
    PublicKey,
    PublicKeySource,
    RegionKeys,
    resolve_public_key,
)
from ingester.integrity.modes import IntegrityMode, dead_letters
from ingester.integrity.reconcile import Completeness, entries_by_key, reconcile
from ingester.integrity.verify import (
    AlertKind,
    Violation,
    log_file_sha256,
    signing_string,
    verify_chain,
    verify_digest,
    verify_log_file,
    verify_log_hash,
    verify_signature,
)

__all__ = [
    "AlertKind",
    "ChainLink",
    "CloudTrailPublicKeySource",
    "Completeness",
    "CompletenessEvent",
    "Digest",
    "DigestFile",
    "DigestFormatError",
    "InMemoryPublicKeySource",
    "IntegrityAlert",
    "IntegrityMode",
    "KeyRing",
    "LogFileEntry",
    "PublicKey",
    "PublicKeySource",
    "RegionKeys",
    "Violation",
    "chain_id",
    "completeness_event",
    "dead_letters",
    "digest_prefix",
    "encode_alert",
    "encode_completeness",
    "entries_by_key",
    "integrity_alert",
    "is_digest_key",
    "load_digest_file",
    "log_file_sha256",
    "parse_digest",
    "reconcile",
    "resolve_public_key",
    "signing_string",
    "verify_chain",
    "verify_digest",
    "verify_log_file",
    "verify_log_hash",
    "verify_signature",
]

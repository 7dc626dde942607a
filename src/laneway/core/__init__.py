"""Pure building blocks: schema, keys, priority rules, buckets, statistics.

Nothing in `laneway.core` starts a thread, touches a file or imports trio,
pykka or lmdb (a test enforces it), so it is safe to reuse anywhere,
including client side.
"""

from ._buckets import (
    ENTRY_OVERHEAD as ENTRY_OVERHEAD,
)
from ._buckets import (
    BucketCounters as BucketCounters,
)
from ._buckets import (
    BufferedEvent as BufferedEvent,
)
from ._buckets import (
    DualBucket as DualBucket,
)
from ._buckets import (
    EvictReason as EvictReason,
)
from ._buckets import (
    MemoryBudget as MemoryBudget,
)
from ._buckets import (
    merge_recent as merge_recent,
)
from ._errors import (
    BucketFull as BucketFull,
)
from ._errors import (
    ConfigError as ConfigError,
)
from ._errors import (
    DataDirLocked as DataDirLocked,
)
from ._errors import (
    DataFormatError as DataFormatError,
)
from ._errors import (
    EngineClosed as EngineClosed,
)
from ._errors import (
    InvalidEvent as InvalidEvent,
)
from ._errors import (
    InvalidKey as InvalidKey,
)
from ._errors import (
    InvalidPayload as InvalidPayload,
)
from ._errors import (
    InvalidPriority as InvalidPriority,
)
from ._errors import (
    LanewayError as LanewayError,
)
from ._errors import (
    PayloadTooLarge as PayloadTooLarge,
)
from ._errors import (
    StorageError as StorageError,
)
from ._errors import (
    SubscriptionOverflow as SubscriptionOverflow,
)
from ._fifo import CHUNK as CHUNK
from ._fifo import ChunkedFifo as ChunkedFifo
from ._keys import (
    MAX_DEDUPE_KEY_BYTES as MAX_DEDUPE_KEY_BYTES,
)
from ._keys import (
    MAX_KEY_PART as MAX_KEY_PART,
)
from ._keys import (
    parse_session_key as parse_session_key,
)
from ._keys import (
    session_key as session_key,
)
from ._keys import (
    validate_dedupe_key as validate_dedupe_key,
)
from ._keys import (
    validate_session as validate_session,
)
from ._keys import (
    validate_source as validate_source,
)
from ._keys import (
    validate_tenant as validate_tenant,
)
from ._keys import (
    validate_type as validate_type,
)
from ._priority import (
    DEFAULT as DEFAULT,
)
from ._priority import (
    DEFAULT_RULES as DEFAULT_RULES,
)
from ._priority import (
    EXPLICIT as EXPLICIT,
)
from ._priority import (
    Classifier as Classifier,
)
from ._priority import (
    PayloadPredicate as PayloadPredicate,
)
from ._priority import (
    PriorityRule as PriorityRule,
)
from ._priority import (
    check_priority as check_priority,
)
from ._schema import (
    PRIORITY_LEVELS as PRIORITY_LEVELS,
)
from ._schema import (
    PRIORITY_NAMES as PRIORITY_NAMES,
)
from ._schema import (
    STAMP_GROWTH as STAMP_GROWTH,
)
from ._schema import (
    AuditRecord as AuditRecord,
)
from ._schema import (
    Event as Event,
)
from ._schema import (
    EventHead as EventHead,
)
from ._schema import (
    PriorityMetadata as PriorityMetadata,
)
from ._schema import (
    Receipt as Receipt,
)
from ._schema import (
    SessionMeta as SessionMeta,
)
from ._schema import (
    decode_event as decode_event,
)
from ._schema import (
    decode_event_head as decode_event_head,
)
from ._schema import (
    decode_payload as decode_payload,
)
from ._schema import (
    decode_receipt as decode_receipt,
)
from ._schema import (
    decode_session_meta as decode_session_meta,
)
from ._schema import (
    encode as encode,
)
from ._schema import (
    record_lsn as record_lsn,
)
from ._schema import (
    stamp_lsn as stamp_lsn,
)
from ._stats import (
    BucketStatistics as BucketStatistics,
)
from ._stats import (
    CommitStatistics as CommitStatistics,
)
from ._stats import (
    Statistics as Statistics,
)
from ._stats import (
    percentile as percentile,
)
from ._summaries import (
    SessionSummary as SessionSummary,
)
from ._summaries import (
    Summaries as Summaries,
)
from ._summaries import (
    TenantSummary as TenantSummary,
)
from ._summaries import (
    roll_up as roll_up,
)
from ._summaries import (
    summarize_session as summarize_session,
)
from ._tenant import (
    OVERFLOW_STRATEGIES as OVERFLOW_STRATEGIES,
)
from ._tenant import (
    Overflow as Overflow,
)
from ._tenant import (
    TenantConfig as TenantConfig,
)
from ._tenant import (
    tenant_config_from as tenant_config_from,
)

__all__ = [
    "ENTRY_OVERHEAD",
    "BucketCounters",
    "BufferedEvent",
    "DualBucket",
    "EvictReason",
    "MemoryBudget",
    "merge_recent",
    "CHUNK",
    "ChunkedFifo",
    "BucketFull",
    "ConfigError",
    "DataDirLocked",
    "DataFormatError",
    "EngineClosed",
    "InvalidEvent",
    "InvalidKey",
    "InvalidPayload",
    "InvalidPriority",
    "LanewayError",
    "PayloadTooLarge",
    "StorageError",
    "SubscriptionOverflow",
    "MAX_DEDUPE_KEY_BYTES",
    "MAX_KEY_PART",
    "parse_session_key",
    "session_key",
    "validate_dedupe_key",
    "validate_session",
    "validate_source",
    "validate_tenant",
    "validate_type",
    "DEFAULT",
    "DEFAULT_RULES",
    "EXPLICIT",
    "Classifier",
    "PayloadPredicate",
    "PriorityRule",
    "check_priority",
    "PRIORITY_LEVELS",
    "PRIORITY_NAMES",
    "AuditRecord",
    "SessionSummary",
    "Summaries",
    "TenantSummary",
    "roll_up",
    "summarize_session",
    "Event",
    "EventHead",
    "PriorityMetadata",
    "Receipt",
    "SessionMeta",
    "decode_event",
    "decode_event_head",
    "decode_payload",
    "decode_receipt",
    "decode_session_meta",
    "encode",
    "stamp_lsn",
    "record_lsn",
    "STAMP_GROWTH",
    "BucketStatistics",
    "CommitStatistics",
    "Statistics",
    "percentile",
    "OVERFLOW_STRATEGIES",
    "Overflow",
    "TenantConfig",
    "tenant_config_from",
]

"""Table definitions, the single description of the schema that migrations create."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

metadata = MetaData()

# Key-value facts about this installation (trust domain, bundle sequence).
meta = Table(
    "warden_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

agents = Table(
    "agents",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("spiffe_id", String(2048), nullable=False, unique=True),
    Column("owner", String(256), nullable=False),
    Column("purpose", Text, nullable=False, default=""),
    Column("labels", JSON, nullable=False),
    Column("selectors", JSON, nullable=False),
    Column("max_svid_ttl_s", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("credential_epoch", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("status_reason", Text, nullable=False, default=""),
    Column("groups", JSON, nullable=False, default=list),
    # What a playbook holds the agent to (restrict, throttle, approval): read by every
    # decision point, through the feed, until it is lifted.
    Column("containment", JSON, nullable=False, default=dict),
    # What a SCIM provisioning client says of the agent beyond Warden's own attributes.
    Column("external_id", String(256), nullable=True),
    Column("display_name", String(256), nullable=True),
    Column("description", Text, nullable=True),
)

# SPIFFE IDs of deleted agents: not reusable until every credential they held has expired.
retired_spiffe_ids = Table(
    "retired_spiffe_ids",
    metadata,
    Column("spiffe_id", String(2048), primary_key=True),
    Column("retired_at", DateTime(timezone=True), nullable=False),
    Column("reusable_at", DateTime(timezone=True), nullable=False),
    Column("last_epoch", Integer, nullable=False),
)

operators = Table(
    "operators",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("spiffe_id", String(2048), nullable=False, unique=True),
    Column("role", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("credential_epoch", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(2048), nullable=False),
)

# Individually revoked credentials: X.509 serials (hex) and JWT ids, kept until they expire.
revoked_credentials = Table(
    "revoked_credentials",
    metadata,
    Column("credential_id", String(128), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("spiffe_id", String(2048), nullable=False),
    Column("not_after", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
)

# The CA's certificates; their private keys live in the key manager under ``key_ref``.
authorities = Table(
    "authorities",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # root | intermediate | jwt
    Column("status", String(16), nullable=False),  # active | retiring | retired
    Column("pem", Text, nullable=False),  # certificate, or public key for jwt
    Column("key_ref", String(128), nullable=False),
    Column("not_before", DateTime(timezone=True), nullable=False),
    Column("not_after", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("seq", BigInteger, nullable=False),
)
Index("ix_authorities_kind_status", authorities.c.kind, authorities.c.status)

# Every change to a principal's status or epoch, and every single-credential revocation, in
# commit order. Verifiers rebuild their in-memory view from it and follow it by sequence.
principal_feed = Table(
    "principal_feed",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("spiffe_id", String(2048), nullable=False),
    Column("change", String(16), nullable=False),  # status | deleted | credential
    Column("status", String(16), nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("credential_id", String(128), nullable=True),
    Column("not_after", DateTime(timezone=True), nullable=True),
    Column("reason", Text, nullable=False),
)

# Processes `warden run` started for an agent: (boot, pid, start time) names one process for
# ever, so a reused pid never inherits the binding.
process_bindings = Table(
    "process_bindings",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("agent_name", String(63), nullable=False),
    Column("boot_id", String(64), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(2048), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
)
Index(
    "ix_process_bindings_process",
    process_bindings.c.boot_id,
    process_bindings.c.pid,
    process_bindings.c.start_time,
)

# What a container launcher must present for an agent: its image digest and its SBOM's digest.
agent_evidence = Table(
    "agent_evidence",
    metadata,
    Column("agent_name", String(63), primary_key=True),
    Column("image_digest", String(128), nullable=False),
    Column("sbom_digest", String(128), nullable=False),
    Column("sbom", Text, nullable=False),  # kept: the trust engine reads it
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One-time join tokens, stored only as their SHA-256.
join_tokens = Table(
    "join_tokens",
    metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("agent_name", String(63), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(2048), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
)

# Every attestation attempt, issued or refused.
attestation_events = Table(
    "attestation_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("method", String(16), nullable=False),  # unix | launcher | container
    Column("outcome", String(16), nullable=False),  # issued | refused
    Column("agent_name", String(63), nullable=True),
    Column("evidence", JSON, nullable=False),
    Column("reason", Text, nullable=False),
)

work_orders = Table(
    "work_orders",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("agent", String(2048), nullable=False),
    Column("ticket", String(128), nullable=False),
    Column("actions", JSON, nullable=False),
    Column("resources", JSON, nullable=False),
    Column("constraints", JSON, nullable=False),
    Column("not_before", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("max_uses", Integer, nullable=False),
    Column("uses", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("issued_by", String(2048), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("reason", Text, nullable=False),
)
Index("ix_work_orders_agent", work_orders.c.agent, work_orders.c.status)

# The decision log (warden.audit): one entry per position, positions without gaps. ``entry``
# is the RFC 8785 canonical JSON that the Merkle tree hashes; ``mac`` seals (position, leaf
# hash) with the log's key, so an entry edited and re-hashed in place is found.
audit_entries = Table(
    "audit_entries",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("kind", String(16), nullable=False),  # decision | identity | policy | response
    Column("at", DateTime(timezone=True), nullable=False),
    Column("entry", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("mac", LargeBinary(32), nullable=False),
    Column("decision_id", String(36), nullable=True),
    Column("subject", String(2048), nullable=True),
    Column("decision", String(8), nullable=True),
)
Index("ix_audit_entries_decision_id", audit_entries.c.decision_id, unique=True)
Index("ix_audit_entries_subject", audit_entries.c.subject, audit_entries.c.seq)

# The Merkle tree's perfect subtrees above the leaves: node (level, idx) covers entries
# [idx * 2**level, (idx + 1) * 2**level). Proofs are built from these.
audit_nodes = Table(
    "audit_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

# Signed checkpoints (C2SP tlog-checkpoint notes), one per tree size.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

policy_events = Table(
    "policy_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("source", Text, nullable=False),
    Column("name", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("revision", String(80), nullable=False),
    Column("outcome", String(16), nullable=False),  # activated | rejected | shadowing
    Column("reason", Text, nullable=False),
)

shadow_flips = Table(
    "shadow_flips",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("decision_id", String(36), nullable=False),
    Column("active_revision", String(80), nullable=False),
    Column("shadow_revision", String(80), nullable=False),
    Column("active", String(8), nullable=False),
    Column("shadow", String(8), nullable=False),
    Column("request", JSON, nullable=False),
    Column("shadow_reasons", JSON, nullable=False),
)

enforcement_points = Table(
    "enforcement_points",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("spiffe_id", String(2048), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(2048), nullable=False),
    Column("status", String(16), nullable=False),
)

# MCP sessions (handshake era) and the SPIFFE ID that opened each: only it may use the session.
# The session id is kept as its SHA-256, so the table holds nothing a caller could present.
mcp_sessions = Table(
    "mcp_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("server", String(2048), nullable=False),
    Column("spiffe_id", String(2048), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_mcp_sessions_spiffe_id", "spiffe_id"),
)

# Tool definitions as first seen (or last approved) per MCP server; a changed definition waits
# in pending_* until an operator approves it.
mcp_tool_pins = Table(
    "mcp_tool_pins",
    metadata,
    Column("server", String(2048), primary_key=True),
    Column("tool", String(128), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("definition", JSON, nullable=False),
    Column("pinned_at", DateTime(timezone=True), nullable=False),
    Column("pinned_by", String(2048), nullable=False),
    Column("pending_digest", String(64), nullable=True),
    Column("pending_definition", JSON, nullable=True),
    Column("pending_since", DateTime(timezone=True), nullable=True),
)

# Requests a server put to an agent through the gateway (handshake era): the agent may answer
# only these, on the session they came on, before they expire.
mcp_server_requests = Table(
    "mcp_server_requests",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("request_id", String(256), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# The latest vulnerability report of each agent's workload, as counts (VEX-cleared findings
# left out) and the image digests it scanned; health is assessed from it when read.
workload_health = Table(
    "workload_health",
    metadata,
    Column("agent_name", String(63), primary_key=True),
    Column("tool", String(64), nullable=False),
    Column("counts", JSON, nullable=False),  # severity -> [finding ids]
    Column("cleared", JSON, nullable=False),  # finding id -> VEX state
    Column("digests", JSON, nullable=False),
    Column("report_sha256", String(64), nullable=False),
    Column("reported_at", DateTime(timezone=True), nullable=False),
    Column("reported_by", String(2048), nullable=False),
)

# Behavioural baselines, one per agent (keyed by SPIFFE ID), saved by the risk engine so
# that what an agent's normal looks like survives a restart.
risk_baselines = Table(
    "risk_baselines",
    metadata,
    Column("subject", String(2048), primary_key=True),
    Column("baseline", JSON, nullable=False),
    Column("saved_at", DateTime(timezone=True), nullable=False),
)

# One run of a playbook for one trigger: the key makes enforcement points that see the same
# event act once; ``steps`` says what each action did.
response_runs = Table(
    "response_runs",
    metadata,
    Column("run_key", String(128), primary_key=True),
    Column("playbook", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("agent", String(63), nullable=False),
    Column("trigger", JSON, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("status", String(16), nullable=False),  # running | done | failed
    Column("steps", JSON, nullable=False),
    Column("runner", String(2048), nullable=False),
    Index("ix_response_runs_agent", "agent", "started_at"),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("agent", String(63), nullable=False),
    Column("playbook", String(128), nullable=False),
    Column("title", Text, nullable=False),
    Column("severity", String(16), nullable=False),  # low | medium | high | critical
    Column("status", String(16), nullable=False),  # open | resolved
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("resolved_by", String(2048), nullable=True),
    Column("resolution", Text, nullable=False, default=""),
    Column("events", JSON, nullable=False),
    Column("decisions", JSON, nullable=False),
    Column("factors", JSON, nullable=False),
    Index("ix_incidents_status", "status", "opened_at"),
)

# Requests parked for a human (a playbook's require_approval) and releases that need one.
approvals = Table(
    "approvals",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("agent", String(63), nullable=False),
    Column("kind", String(16), nullable=False),  # request | release
    Column("action", String(256), nullable=False),
    Column("resource", String(2048), nullable=False),
    Column("decision_id", String(36), nullable=True),
    Column("detail", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | approved | denied | timed_out
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("decided_by", String(2048), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("reason", Text, nullable=False, default=""),
    Index("ix_approvals_status", "status", "created_at"),
)

# Groups a SCIM client manages; their members are the agents whose ``groups`` hold the name,
# so a membership change is an agent change (through the feed, on the next decision).
scim_groups = Table(
    "scim_groups",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("external_id", String(256), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Bearer tokens of SCIM provisioning clients, as SHA-256 digests (the token is shown once).
scim_tokens = Table(
    "scim_tokens",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(2048), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# The console's one-time login links and sessions: SHA-256 digests of the secrets only.
console_links = Table(
    "console_links",
    metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("operator", String(63), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(2048), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("operator", String(63), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("via", String(16), nullable=False),  # link | oidc
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
)

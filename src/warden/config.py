"""Typed, frozen settings. The only module that reads the process environment.

Precedence, highest first: explicit arguments > ``WARDEN_*`` environment variables > the config
file (TOML) > defaults. The config file is ``$WARDEN_CONFIG`` if set, else ``warden.toml`` in
the state directory. Hard bounds (maximum TTLs, body sizes) are fields with safe defaults whose
validators refuse values outside what Warden supports.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from warden.errors import ConfigError

ENV_PREFIX = "WARDEN_"
CONFIG_FILE_NAME = "warden.toml"
HOUR = 3600
DAY = 24 * HOUR


class Webhook(BaseModel):
    """Where ``notify`` posts: the body is signed with HMAC-SHA256 under the key in
    ``secret_file`` (never in the configuration itself); ``format`` shapes the body for a
    generic receiver, Slack or Microsoft Teams."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://")
    secret_file: Path
    format: Literal["warden", "slack", "teams"] = "warden"
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class Settings(BaseSettings):
    """Everything Warden reads from its environment, validated once and then frozen."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    state_dir: Path = Field(default=Path(".warden"), description="Where Warden keeps its state")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite in the state directory"
    )
    trust_domain: str = Field(default="example.org", description="Used by `warden init` only")
    master_key_file: Path | None = Field(
        default=None, description="Key that encrypts CA keys at rest; default: in the state dir"
    )

    x509_svid_ttl_s: int = Field(default=HOUR, ge=60, le=DAY)
    x509_svid_max_ttl_s: int = Field(default=HOUR, ge=60, le=DAY)
    jwt_svid_ttl_s: int = Field(default=300, ge=30, le=HOUR)
    jwt_svid_max_ttl_s: int = Field(default=HOUR, ge=30, le=HOUR)
    operator_svid_ttl_s: int = Field(default=12 * HOUR, ge=300, le=7 * DAY)
    # Certificates `warden ca issue-tls` gives infrastructure (PostgreSQL, Redis and their
    # clients), which reload their files less often than Warden's own processes renew.
    tls_cert_max_ttl_s: int = Field(default=7 * DAY, ge=HOUR, le=90 * DAY)
    intermediate_ttl_s: int = Field(default=30 * DAY, ge=DAY, le=365 * DAY)
    root_ttl_s: int = Field(default=3650 * DAY, ge=30 * DAY, le=7300 * DAY)
    clock_skew_s: int = Field(default=30, ge=0, le=300)

    workload_socket: Path | None = Field(
        default=None, description="Workload API socket; default: run/workload.sock in state dir"
    )
    feed_max_staleness_s: float = Field(default=2.0, gt=0, le=60)

    policy_bundle: Path | None = Field(
        default=None, description="Active policy bundle (directory or .tar.gz); default: shipped"
    )
    policy_shadow_bundle: Path | None = None
    policy_signing_keys: list[Path] = Field(default_factory=list)
    policy_require_signature: bool = False
    signal_max_age_s: float = Field(default=60.0, gt=0, le=3600)

    gateway_name: str = "gateway"
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8444, ge=0, le=65535)
    gateway_routes: Path | None = None
    gateway_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    gateway_max_response_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    gateway_max_url_bytes: int = Field(default=8192, ge=256, le=65536)
    gateway_max_header_bytes: int = Field(default=16384, ge=1024, le=262144)
    # The whole request line and headers, enforced while they arrive.
    gateway_max_head_bytes: int = Field(default=65536, ge=4096, le=1024 * 1024)
    # Time a client has to send a whole request head, and again its body.
    gateway_client_timeout_s: float = Field(default=10.0, gt=0, le=300)
    gateway_upstream_timeout_s: float = Field(default=30.0, gt=0, le=600)
    gateway_max_concurrent_per_agent: int = Field(default=64, ge=1, le=10000)
    # Where this gateway's agents are (for those without a region label): residency checks.
    gateway_region: str = ""
    # Data-loss prevention: past this many records a request or an answer is a bulk export;
    # links to these hosts (and their subdomains) are not counted as going outside.
    dlp_bulk_records: int = Field(default=1000, ge=1, le=10_000_000)
    # Off only where another system inspects what agents get and send: with it off, answers
    # are not classified or counted, and policies see zero outbound records.
    dlp_enabled: bool = True
    dlp_allowed_hosts: list[str] = Field(default_factory=list)
    # The plain-HTTP listener of /livez, /readyz and /metrics (0: a free port, logged).
    metrics_host: str = "127.0.0.1"
    gateway_metrics_port: int = Field(default=0, ge=0, le=65535)
    api_metrics_port: int = Field(default=0, ge=0, le=65535)
    # A gateway in its own process may follow the control plane (https://host:8443) for the
    # principal feed and the policy bundle, instead of the store; past this age without the
    # control plane confirming it, the bundle is too old to decide with.
    control_plane_url: str = ""
    # Names other hosts reach this process by (a Service, a Compose service), put in its
    # server certificate beside localhost and 127.0.0.1.
    server_names: list[str] = Field(default_factory=list)
    policy_max_age_s: float = Field(default=30.0, ge=1, le=3600)
    # Where the state every gateway shares lives (DLP windows, throttles), for example
    # redis://127.0.0.1:6379/0. Empty: each gateway process keeps its own (one process only).
    redis_url: str = ""
    # Workload health: more high findings than this, or an attestation older than this, is
    # degraded.
    health_max_high: int = Field(default=5, ge=0, le=100_000)
    health_max_attestation_age_s: int = Field(default=86_400, ge=60, le=30 * 86_400)
    # One Server-Sent Event from an MCP server, read whole before any of it is passed on.
    mcp_max_event_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)

    # The decision log: a checkpoint at least this often while entries arrive; names whose
    # values are masked wherever they appear in a decision's context (routes add their own);
    # a witness for the checkpoints (a directory, or the URL of `warden audit witness`).
    audit_checkpoint_interval_s: float = Field(default=1.0, ge=0.05, le=60)
    audit_mask_keys: list[str] | None = None  # default: warden.audit.entries.DEFAULT_MASKED
    audit_witness: str | None = None

    # How often a process re-reads what others write to the shared store: workload health,
    # work orders, held MCP tools (the principal feed has its own, shorter, bound).
    store_poll_s: float = Field(default=1.0, ge=0.05, le=60)

    # Continuous verification: an agent's baseline is trusted, and departures from it score,
    # after this many requests over at least this long (its learning period).
    risk_learning_requests: int = Field(default=200, ge=1, le=10_000_000)
    risk_learning_s: float = Field(default=20 * 3600.0, ge=0, le=90 * 86_400)

    # Automated response: the playbook bundle (default: the shipped playbooks, signed and
    # versioned with the policy signing keys), the webhooks and hooks playbooks may name.
    response_enabled: bool = True
    playbooks: Path | None = None
    response_webhooks: dict[str, Webhook] = Field(default_factory=dict)
    response_hooks: dict[str, list[str]] = Field(default_factory=dict)
    response_hook_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    # How long a request parked for approval waits when its obligation names no time.
    approval_timeout_s: float = Field(default=300.0, ge=1, le=86_400)

    # The sandbox: where runs' work directories are made (traversable by the runs' uids, so
    # not inside the private state directory; default: under the system's temporary
    # directory), which backend runs code (auto: bubblewrap where it works, else WebAssembly;
    # none: code never runs), and how much code and input a run may bring.
    sandbox_dir: Path | None = None
    sandbox_backend: Literal["auto", "bwrap", "wasm", "none"] = "auto"
    sandbox_max_code_bytes: int = Field(default=256 * 1024, ge=1024, le=4 * 1024 * 1024)
    sandbox_max_files: int = Field(default=16, ge=0, le=256)
    sandbox_max_file_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)

    # The console (/console on the control plane): how long a one-time login link and a
    # session last (idle, and at most from sign-in), and the OpenID provider people sign in
    # with, when one is set (the client secret is read from a file, never from settings).
    console_enabled: bool = True
    console_login_link_ttl_s: int = Field(default=600, ge=30, le=DAY)
    console_session_idle_s: int = Field(default=900, ge=60, le=DAY)
    console_session_max_s: int = Field(default=3600, ge=300, le=DAY)
    console_oidc_issuer: str | None = Field(default=None, pattern=r"^https://")
    console_oidc_client_id: str | None = Field(default=None, max_length=256)
    console_oidc_client_secret_file: Path | None = None
    console_oidc_ca_file: Path | None = None
    console_oidc_operator_claim: str = Field(default="preferred_username", max_length=64)
    # The console's address as a browser sees it (the OpenID redirect is built on it);
    # default: https://<api_host>:<api_port>.
    console_public_url: str | None = Field(default=None, pattern=r"^https://")

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8443, ge=0, le=65535)
    api_max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No .env or secrets-dir sources: keys and passphrases never come from the environment.
        return init_settings, env_settings, _FileSource(settings_cls)

    @property
    def database(self) -> str:
        """The SQLAlchemy URL of the store."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.state_dir / 'warden.db').resolve()}"

    @property
    def workload_socket_path(self) -> Path:
        """The Unix socket of the SPIFFE Workload API."""
        return self.workload_socket or self.state_dir / "run" / "workload.sock"

    @property
    def key_file(self) -> Path:
        """The file holding the key that encrypts private keys at rest."""
        return self.master_key_file or self.state_dir / "keys" / "master.key"


_config_path: ContextVar[Path | None] = ContextVar("warden_config_path", default=None)


class _FileSource(PydanticBaseSettingsSource):
    """Reads the TOML config file chosen by :func:`load_settings`."""

    @property
    def path(self) -> Path | None:
        return _config_path.get()

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            with self.path.open("rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {self.path}: {exc}") from exc
        section = data.get("warden", data)
        if not isinstance(section, dict):
            raise ConfigError(f"config file {self.path}: [warden] must be a table")
        return section


def config_file_path(state_dir: Path | None = None) -> Path:
    """Where the config file is: ``$WARDEN_CONFIG``, else ``warden.toml`` in the state dir."""
    explicit = os.environ.get(ENV_PREFIX + "CONFIG")
    if explicit:
        return Path(explicit)
    if state_dir is None:
        state_dir = Path(os.environ.get(ENV_PREFIX + "STATE_DIR", ".warden"))
    return state_dir / CONFIG_FILE_NAME


def load_settings(**overrides: Any) -> Settings:
    """Build the settings with arguments > environment > config file > defaults.

    Raises :class:`ConfigError` with every problem listed when a value is out of bounds.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    state_dir = given.get("state_dir")
    token = _config_path.set(config_file_path(Path(state_dir) if state_dir is not None else None))
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc
    finally:
        _config_path.reset(token)
    if settings.x509_svid_ttl_s > settings.x509_svid_max_ttl_s:
        raise ConfigError("x509_svid_ttl_s exceeds x509_svid_max_ttl_s")
    if settings.jwt_svid_ttl_s > settings.jwt_svid_max_ttl_s:
        raise ConfigError("jwt_svid_ttl_s exceeds jwt_svid_max_ttl_s")
    return settings


def starter_config(trust_domain: str) -> str:
    """The TOML that `warden init` writes: the defaults a user is most likely to change."""
    return (
        "# Warden configuration. Precedence: arguments > WARDEN_* environment > this file.\n"
        "[warden]\n"
        f'trust_domain = "{trust_domain}"\n'
        '# database_url = "postgresql+psycopg://warden@127.0.0.1:5432/warden"\n'
        f"x509_svid_ttl_s = {HOUR}\n"
        "jwt_svid_ttl_s = 300\n"
        'api_host = "127.0.0.1"\n'
        "api_port = 8443\n"
    )

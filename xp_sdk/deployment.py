"""A deployment: its home, settings, audit ledger, provenance keys and policy, opened together."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from audit import (
    AuditError,
    Ledger,
    LogIntegrityError,
    LogSigningKey,
    LogVerifierKey,
    NewApiKey,
    RecordConflictError,
    RecordNotFoundError,
    Store,
    StoreError,
)
from audit import (
    AuthenticationError as AuditAuthenticationError,
)
from audit import (
    RateLimitedError as AuditRateLimitedError,
)
from audit.checkpoint import WitnessNoteError
from audit.rate_limits import KeyRateLimiter
from policy import Policy, PolicyError, Scope
from xp_sdk.config import Settings, read_config_file, write_config_file
from xp_sdk.errors import (
    AlreadyInitializedError,
    AuditIntegrityError,
    AuditStoreError,
    AuthenticationError,
    ConflictError,
    HomeError,
    InvalidInputError,
    NotFoundError,
    NotInitializedError,
    RateLimitedError,
)
from xp_sdk.home import Home
from xp_sdk.provenance import ProvenanceKeys, init_provenance_keys, load_provenance_keys
from xp_sdk.staged_home import staged_home
from xp_sdk.workspace import sweep_work_folders

log = logging.getLogger(__name__)

DEFAULT_TENANT = "default"
LOG_KEY_NAME = "xp-sdk-audit"
ADMIN_SCOPES = tuple(scope.value for scope in Scope)


@contextmanager
def audit_errors() -> Iterator[None]:
    """Re-raise the audit and policy packages' errors as ``XPError``s a caller can act on."""
    try:
        yield
    except AuditAuthenticationError as exc:
        raise AuthenticationError(exc.message) from exc
    except AuditRateLimitedError as exc:
        raise RateLimitedError(exc.message, retry_after=exc.retry_after) from exc
    except RecordNotFoundError as exc:
        raise NotFoundError(exc.message) from exc
    except RecordConflictError as exc:
        raise ConflictError(exc.message) from exc
    except WitnessNoteError as exc:
        raise InvalidInputError(exc.message) from exc
    except LogIntegrityError as exc:
        raise AuditIntegrityError(exc.message, seq=exc.seq) from exc
    except StoreError as exc:
        raise AuditStoreError(exc.message) from exc
    except AuditError as exc:
        raise AuditStoreError(exc.message) from exc
    except PolicyError as exc:
        raise HomeError(f"the policy set does not load: {exc}") from exc


@dataclass
class Deployment:
    settings: Settings
    ledger: Ledger
    provenance: ProvenanceKeys = field(repr=False)
    policy: Policy
    log_verifier: LogVerifierKey

    @property
    def home(self) -> Home:
        return Home(self.settings.home)

    @classmethod
    def open(cls, settings: Settings) -> Deployment:
        home = Home(settings.home)
        if not home.audit_key_path.exists():
            raise NotInitializedError(f"{home.root} is not an xp-sdk home yet; run `xp init` (or set XP_HOME)")
        home.secure_database_files()
        with audit_errors():
            try:
                log_key = LogSigningKey.load(home.audit_key_path)
            except (OSError, ValueError) as exc:
                raise HomeError(f"cannot read the audit log key {home.audit_key_path}: {exc}") from exc
            policy = Policy.load(settings.policy_paths)
            store = Store.open(settings.database_url)
            ledger = Ledger(
                store, origin=settings.log_origin, signing_key=log_key, checkpoint_every=settings.checkpoint_every,
                rate_limiter=shared_rate_limiter(settings),
            )  # fmt: skip
        deployment = cls(settings, ledger, load_provenance_keys(home), policy, log_key.public_key)
        # Every process that opens the home sweeps: a CLI-only deployment has no server start-up to do it, and the
        # folders' locks keep a sweep away from generations still running elsewhere (one scandir when empty).
        deployment.sweep_work()
        return deployment

    def sweep_work(self) -> list[str]:
        """Remove the work folders (``xp_sdk.workspace``) of generations that are not "requested" in the audit log
        (finished, or unknown to it) and that no live process holds; the generation ids removed."""

        def status(generation_id: str) -> str | None:
            found = self.ledger.find_generation(generation_id)
            return found.status if found is not None else None

        return sweep_work_folders(self.home.work_dir, status)

    def close(self) -> None:
        self.ledger.store.dispose()


def shared_rate_limiter(settings: Settings) -> KeyRateLimiter | None:
    """The per-key limiter every process of the deployment shares: Redis when configured, else (None) the
    database's own counters."""
    if settings.redis_url is None:
        return None
    from xp_sdk.shared_state.rate_limits import RedisRateLimiter  # limits and redis load only when configured

    return RedisRateLimiter(settings.redis_url, prefix=settings.redis_prefix)


@dataclass(frozen=True)
class Initialized:
    """What ``xp init`` made. ``api_key`` is the first admin key, shown once."""

    home: Path
    database_url: str
    tenant: str
    api_key: NewApiKey = field(repr=False)
    log_verifier_key: str
    """The audit log's public key (C2SP vkey), for witnesses and ``xp audit verify`` elsewhere."""
    trust_anchor: Path


def init_deployment(
    home: str | os.PathLike[str] | None = None,
    *,
    database_url: str | None = None,
    tenant: str = DEFAULT_TENANT,
    organization: str = "xp-sdk development",
) -> Initialized:
    """Make a home: provenance keys, the audit log key, settings, the database, a tenant and an admin key.

    All or nothing: the home is built beside its place and put there only once it holds its admin key
    (``xp_sdk.staged_home``), so an init that is killed or fails leaves nothing a second one would refuse."""
    target = Home.resolve(home)
    with staged_home(target) as staging:
        if target.audit_key_path.exists():
            raise AlreadyInitializedError(
                f"{target.root} is already initialized; use it, or point XP_HOME at a new folder"
            )
        config = read_config_file(target)
        if database_url is not None:
            config["database_url"] = database_url
        config.setdefault("log_origin", f"xp-sdk/{secrets.token_hex(4)}")
        staging.ensure()
        staging.policies_dir.mkdir(mode=0o700, exist_ok=True)
        if not target.watermark_key_path.exists():
            init_provenance_keys(staging, organization=organization)
        write_config_file(staging, config)
        log_key = LogSigningKey.generate(LOG_KEY_NAME)
        log_key.save(staging.audit_key_path)
        # The staged home's own settings: its SQLite file (the default) is built inside it and moves with it.
        settings = Settings.resolve(home=staging.root)
        with audit_errors():
            Policy.load(tuple(p for p in (target.policies_dir,) if p.is_dir()))  # an operator's, put there before
            store = Store.open(settings.database_url)
            try:
                # No signing key: nothing is signed with the log key until the home that holds it is in place.
                ledger = Ledger(store, origin=settings.log_origin)
                with suppress(RecordConflictError):  # a shared PostgreSQL database may already know the tenant
                    ledger.create_tenant(tenant)
                admin = ledger.create_key(tenant, scopes=ADMIN_SCOPES, name="admin (xp init)")
            finally:
                store.dispose()
    final = Settings.resolve(home=target.root)
    _sign_first_checkpoint(final, log_key)
    return Initialized(
        home=target.root,
        database_url=final.database_url,
        tenant=tenant,
        api_key=admin,
        log_verifier_key=log_key.public_key.to_vkey(),
        trust_anchor=target.signing_dir / "ca.pem",
    )


def _sign_first_checkpoint(settings: Settings, log_key: LogSigningKey) -> None:
    """Sign the new log's first tree head. Best effort: the home is in place and its admin key made, whose secret
    must reach the caller; a checkpoint that fails now is signed by the deployment's next one."""
    try:
        store = Store.open(settings.database_url)
        try:
            Ledger(store, origin=settings.log_origin, signing_key=log_key).log.checkpoint()
        finally:
            store.dispose()
    except AuditError as exc:
        log.warning("xp init: the first checkpoint was not signed (%s); the next checkpoint will cover it", exc)


def check_tenant_id(tenant: str) -> str:
    if not tenant or not all(c.isalnum() or c in "-_." for c in tenant):
        raise InvalidInputError(f"tenant {tenant!r} must be letters, digits, '-', '_' or '.'")
    return tenant

"""One settings object: arguments, then ``XP_*`` environment variables, then the home's ``config.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError

from audit.store import redact_url
from policy import DEFAULT_FACE_MATCH_THRESHOLD
from xp_sdk.errors import HomeError, InvalidInputError
from xp_sdk.home import Home
from xp_sdk.variables import ENVIRONMENT_ONLY as ENVIRONMENT_ONLY
from xp_sdk.variables import SETTING_VARIABLES as _ENV
from xp_sdk.variables import VARIABLES as VARIABLES
from xp_sdk.variables import environment as environment

CONFIG_FILE = "config.json"
DEFAULT_CONSENT_VALIDITY_DAYS = 365


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    home: Path
    database_url: str = Field(description="sqlite:///… (default: xp.db in the home) or postgresql://…")
    api_key: SecretStr | None = None
    face_match_threshold: float = Field(default=DEFAULT_FACE_MATCH_THRESHOLD, ge=-1.0, le=1.0)
    log_origin: str = Field(default="xp-sdk/audit", description="the name signed checkpoints carry")
    policy_paths: tuple[Path, ...] = ()
    checkpoint_every: int = Field(default=256, ge=1)
    consent_validity_days: int = Field(
        default=DEFAULT_CONSENT_VALIDITY_DAYS,
        ge=1,
        le=36500,
        description="how long a consent granted without an explicit expiry stays valid",
    )
    max_driving_seconds: float = Field(
        default=600.0, gt=0.0, le=86_400.0, description="the longest driving video accepted, in seconds"
    )
    max_driving_frames: int = Field(
        default=18_000, ge=1, le=10_000_000, description="the most frames a driving video may have"
    )
    base_url: str | None = Field(default=None, description="the server a Client without a home talks to")
    debug: Annotated[bool, BeforeValidator(lambda value: bool(value))] = Field(
        default=False, description="any value: the CLI shows tracebacks and lets native libraries write to stderr"
    )
    signing_chain: Path | None = Field(
        default=None, description="a production C2PA signer's certificate chain (PEM); with signing_key"
    )
    signing_key: Path | None = Field(default=None, description="that signer's private key (PEM)")
    trust_anchors: Path | None = Field(
        default=None, description="the CA certificates (PEM) manifests are trusted by (default: the home's ca.pem)"
    )
    models_toml: Path | None = Field(default=None, description="the diffusion models' file (default: the home's)")
    face_tracking: str | None = Field(
        default=None, description="how the engine tracks driving videos: auto (when unset), litert or mediapipe"
    )
    face_landmarker_model: Path | None = Field(default=None, description="a copy of the pinned FaceLandmarker")
    yunet_model: Path | None = Field(default=None, description="a copy of the pinned YuNet face detector")
    sface_model: Path | None = Field(default=None, description="a copy of the pinned SFace recognizer")
    redis_url: str | None = Field(
        default=None,
        description="redis://… that every process of the deployment shares: per-key rate limits, and for xp serve "
        "the job queue, its progress and idempotency keys (default: none; limits in the database, jobs in one process)",
    )
    redis_prefix: str = Field(
        default="xp",
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="the prefix of this deployment's Redis keys, so that deployments can share one Redis",
    )

    @classmethod
    def resolve(cls, *, home: str | os.PathLike[str] | None = None, **arguments: Any) -> Settings:
        """Arguments win over the environment, which wins over ``<home>/config.json``."""
        resolved_home = Home.resolve(home)
        values: dict[str, Any] = {
            name: value for name, value in read_config_file(resolved_home).items() if name not in ENVIRONMENT_ONLY
        }
        for name, variable in _ENV.items():
            if os.environ.get(variable):
                values[name] = os.environ[variable]
        values.update({k: v for k, v in arguments.items() if v is not None})
        values.setdefault("database_url", f"sqlite:///{resolved_home.database_path}")
        values.setdefault("policy_paths", (resolved_home.policies_dir,) if resolved_home.policies_dir.is_dir() else ())
        try:
            return cls(home=resolved_home.root, **values)
        except ValidationError as exc:
            raise InvalidInputError(f"invalid setting: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from exc

    def masked(self) -> dict[str, Any]:
        """For ``xp config show``: every setting, secrets and database passwords hidden."""
        data = self.model_dump(mode="json")
        data["api_key"] = "***" if self.api_key is not None else None
        data["database_url"] = mask_password(self.database_url)
        if self.base_url is not None:
            data["base_url"] = mask_password(self.base_url)
        if self.redis_url is not None:
            data["redis_url"] = mask_password(self.redis_url)
        return data


def read_config_file(home: Home) -> dict[str, Any]:
    path = home.root / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HomeError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise HomeError(f"{path} must hold a JSON object")
    return data


def write_config_file(home: Home, values: dict[str, Any]) -> None:
    path = home.root / CONFIG_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def mask_password(url: str) -> str:
    """``url`` with its password, if any, replaced by *** (in its user info or a ``password=`` parameter)."""
    return redact_url(url)

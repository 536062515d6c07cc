"""models.toml: where each diffusion component lies on disk and the sha256 it must have.

Nothing is downloaded, ever: the user fetches public weights themselves and names them here. Each component is
either a diffusers folder (``config.json`` plus ``*.safetensors``) or one ``.safetensors`` file. A file's pin is
its plain ``sha256sum``; a folder's pin is the sha256 of the lines ``"<file sha256>  <relative path>\\n"`` of the
files that are loaded, sorted by path (``xp models check`` prints it). Pickle weights (``.bin``, ``.ckpt``) are
refused: loading one runs code.

The file is found from an argument, else ``XP_MODELS_TOML``, else ``<XP_HOME>/models.toml``.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from xp_sdk.engine.diffusion.declarations import OPTION_KEYS, OptionValue, check_options, controlnet_refusal
from xp_sdk.engine.models import sha256_file
from xp_sdk.errors import DiffusionWeightsMissingError, InvalidInputError, ModelHashMismatchError
from xp_sdk.home import Home

ENV_MODELS_TOML = "XP_MODELS_TOML"
Layout = Literal["diffusers", "transformers", "tokenizer", "file"]
State = Literal["ok", "not_configured", "missing", "unsafe_format", "unsupported", "unpinned", "mismatch"]


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    layout: Layout
    required: bool
    what: str
    suggestion: str
    weights_stem: str = "diffusion_pytorch_model"


COMPONENTS: tuple[ComponentSpec, ...] = (
    ComponentSpec(
        "unet", "diffusers", True,
        "a Stable Diffusion 1.5-family UNet2DConditionModel (diffusers folder, or one .safetensors with `config`)",
        "the unet/ folder of runwayml/stable-diffusion-v1-5 (mirror: stable-diffusion-v1-5/stable-diffusion-v1-5), "
        "or of any SD 1.5 fine-tune",
    ),
    ComponentSpec(
        "vae", "diffusers", True,
        "an AutoencoderKL (or AutoencoderTiny for speed) for SD 1.5 latents",
        "the vae/ folder of the same SD 1.5 repository, or madebyollin/taesd (AutoencoderTiny)",
    ),
    ComponentSpec(
        "controlnet", "diffusers", True,
        "a ControlNetModel trained on MediaPipe face-mesh renders (with pupils)",
        "the diffusion_sd15/ folder of CrucibleAI/ControlNetMediaPipeFace (set variant = \"fp16\")",
    ),
    ComponentSpec(
        "prompt_embeds", "file", False,
        "pre-encoded CLIP prompt embeddings (.safetensors with `prompt_embeds` (1, 77, 768) and optionally "
        "`negative_prompt_embeds`); or give text_encoder + tokenizer instead",
        "made once with `xp_sdk.engine.diffusion.text.save_prompt_embeds` from the SD 1.5 text encoder",
    ),
    ComponentSpec(
        "text_encoder", "transformers", False,
        "the SD 1.5 CLIP text encoder (needs the optional `transformers` package); or give prompt_embeds instead",
        "the text_encoder/ folder of the SD 1.5 repository",
        weights_stem="model",
    ),
    ComponentSpec(
        "tokenizer", "tokenizer", False,
        "the SD 1.5 CLIP tokenizer, used with text_encoder",
        "the tokenizer/ folder of the SD 1.5 repository",
    ),
    ComponentSpec(
        "motion_adapter", "diffusers", False,
        "an AnimateDiff MotionAdapter for temporal consistency (optional)",
        "guoyww/animatediff-motion-adapter-v1-5-2",
    ),
    ComponentSpec(
        "lcm_lora", "file", False,
        "an LCM-LoRA (or TCD-LoRA) fused into the UNet for 4–8 step sampling (optional when the UNet is "
        "already distilled)",
        "pytorch_lora_weights.safetensors of latent-consistency/lcm-lora-sdv1-5 (or h1t/TCD-SD15 with "
        "scheduler = tcd)",
    ),
    ComponentSpec(
        "motion_tokens", "file", False,
        "trained weights of xp-sdk's motion-token cross-attention (optional; none are published yet)",
        "produced by training; see xp_sdk/engine/diffusion/motion_tokens.py",
    ),
)
SPECS: dict[str, ComponentSpec] = {spec.name: spec for spec in COMPONENTS}


@dataclass(frozen=True)
class ComponentEntry:
    name: str
    path: Path | None
    sha256: str | None
    variant: str | None = None
    config: Path | None = None
    options: Mapping[str, OptionValue] = field(default_factory=dict)
    """What the table declares beyond the path and pin (:mod:`.declarations`)."""

    def config_file(self) -> Path | None:
        """The config.json that describes this component, when it has one."""
        if self.path is not None and self.path.is_dir():
            return self.path / "config.json"
        if self.config is not None:
            return self.config / "config.json" if self.config.is_dir() else self.config
        return None


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: State
    required: bool
    path: Path | None
    message: str
    files: tuple[Path, ...] = ()
    actual_sha256: str | None = None
    expected_sha256: str | None = None

    @property
    def usable(self) -> bool:
        return self.state == "ok"


@dataclass(frozen=True)
class WeightsReport:
    """What ``xp models check`` prints: one status per component, and whether the engine can run."""

    toml: Path | None
    searched: tuple[str, ...]
    statuses: tuple[ComponentStatus, ...] = field(default_factory=tuple)

    def status(self, name: str) -> ComponentStatus:
        return next(s for s in self.statuses if s.name == name)

    @property
    def problems(self) -> tuple[ComponentStatus, ...]:
        """Components that stop the engine: required ones not usable, configured optional ones not usable, and
        text conditioning when neither of its two forms is usable."""
        out = [s for s in self.statuses if not s.usable and (s.required or s.state != "not_configured")]
        if not self._text_ok() and not any(s.name in ("prompt_embeds", "text_encoder", "tokenizer") for s in out):
            out.append(self.status("prompt_embeds"))
        return tuple(out)

    def _text_ok(self) -> bool:
        by = {s.name: s for s in self.statuses}
        return by["prompt_embeds"].usable or (by["text_encoder"].usable and by["tokenizer"].usable)

    @property
    def ok(self) -> bool:
        return self.toml is not None and not self.problems

    def describe(self) -> str:
        lines = [f"models.toml: {self.toml}" if self.toml else "models.toml: not found (looked at "
                 + ", ".join(self.searched) + ")"]
        for s in self.statuses:
            flag = "required" if s.required else "optional"
            lines.append(f"  {s.name:15} {s.state:15} ({flag}) {s.message}")
        lines.append("ready" if self.ok else "not ready: " + ", ".join(s.name for s in self.problems))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {
            "toml": None if self.toml is None else str(self.toml),
            "searched": list(self.searched),
            "ok": self.ok,
            "components": [
                {
                    "name": s.name,
                    "state": s.state,
                    "required": s.required,
                    "path": None if s.path is None else str(s.path),
                    "message": s.message,
                    "sha256": s.actual_sha256,
                    "expected_sha256": s.expected_sha256,
                }
                for s in self.statuses
            ],
        }


def find_models_toml(path: str | os.PathLike[str] | None = None) -> tuple[Path | None, tuple[str, ...]]:
    """The models.toml to use, and the places looked at (for messages)."""
    if path is not None:
        candidate = Path(path).expanduser()
        return (candidate if candidate.is_file() else None), (str(candidate),)
    searched = []
    env = os.environ.get(ENV_MODELS_TOML)
    if env:
        candidate = Path(env).expanduser()
        searched.append(f"{ENV_MODELS_TOML}={candidate}")
        if candidate.is_file():
            return candidate, tuple(searched)
    else:
        searched.append(f"{ENV_MODELS_TOML} (unset)")
    candidate = Home.resolve().root / "models.toml"
    searched.append(str(candidate))
    return (candidate if candidate.is_file() else None), tuple(searched)


def parse_models_toml(path: Path) -> dict[str, ComponentEntry]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}") from exc
    unknown = sorted(set(data) - set(SPECS))
    if unknown:
        raise InvalidInputError(f"{path}: unknown components {unknown}; known: {sorted(SPECS)}")
    entries = {}
    for name in SPECS:
        table = data.get(name, {})
        if not isinstance(table, Mapping):
            raise InvalidInputError(f"{path}: [{name}] must be a table")
        extra = sorted(set(table) - {"path", "sha256", "variant", "config", *OPTION_KEYS.get(name, {})})
        if extra:
            raise InvalidInputError(f"{path}: [{name}] has unknown keys {extra}")
        for key in ("path", "sha256", "variant", "config"):
            if key in table and not isinstance(table[key], str):
                raise InvalidInputError(f"{path}: [{name}] {key} must be a string")
        options, problems = check_options(name, table)
        if problems:
            raise InvalidInputError(f"{path}: " + "; ".join(problems))
        entries[name] = ComponentEntry(
            name=name,
            path=_resolve(path, table.get("path")),
            sha256=(table.get("sha256") or "").strip().lower() or None,
            variant=table.get("variant") or None,
            config=_resolve(path, table.get("config")),
            options=options,
        )
    return entries


def _resolve(toml: Path, value: str | None) -> Path | None:
    if not value:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (toml.parent / p)


def component_files(spec: ComponentSpec, entry: ComponentEntry) -> tuple[Path, ...]:
    """The files that loading ``entry`` reads; raises FileNotFoundError or PermissionError (unsafe format)."""
    path = entry.path
    assert path is not None
    if path.is_file():
        if path.suffix != ".safetensors":
            raise PermissionError(f"{path.name} is not a .safetensors file")
        if spec.layout in ("diffusers", "transformers") and entry.config is None:
            raise FileNotFoundError("a single weights file needs `config` (a config.json or the folder holding it)")
        files = [path]
        if entry.config is not None:
            config = entry.config / "config.json" if entry.config.is_dir() else entry.config
            if not config.is_file():
                raise FileNotFoundError(f"config {config} does not exist")
            files.append(config)
        return tuple(files)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    if spec.layout == "file":
        raise FileNotFoundError(f"{path} is a folder; {spec.name} is one .safetensors file")
    if spec.layout == "tokenizer":
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise FileNotFoundError(f"{path} is empty")
        return tuple(files)
    config = path / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{path} has no config.json (not a {spec.layout} folder)")
    stem = spec.weights_stem + (f".{entry.variant}" if entry.variant else "")
    single = path / f"{stem}.safetensors"
    index = path / f"{stem}.safetensors.index.json"
    if single.is_file():
        return (config, single)
    if index.is_file():
        import json

        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return (config, index, *(path / s for s in shards))
    pickles = [p.name for p in path.glob(f"{spec.weights_stem}*") if p.suffix in (".bin", ".ckpt", ".pt", ".pth")]
    if pickles:
        raise PermissionError(f"only pickle weights ({', '.join(sorted(pickles))}); xp-sdk loads .safetensors only")
    raise FileNotFoundError(f"{path} has no {stem}.safetensors")


_digests: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        _digests[key] = sha256_file(path)
    return _digests[key]


def component_digest(entry: ComponentEntry, files: tuple[Path, ...]) -> str:
    """A single file's sha256, or a folder's manifest digest (see the module docstring)."""
    assert entry.path is not None
    if entry.path.is_file():
        return _file_digest(entry.path)
    lines = "".join(f"{_file_digest(f)}  {f.relative_to(entry.path).as_posix()}\n" for f in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def check_component(spec: ComponentSpec, entry: ComponentEntry, *, verify: bool = True) -> ComponentStatus:
    def status(state: State, message: str, **kw: object) -> ComponentStatus:
        return ComponentStatus(spec.name, state, spec.required, entry.path, message, **kw)  # type: ignore[arg-type]

    if entry.path is None:
        return status("not_configured", f"path not set: {spec.what}; public weights: {spec.suggestion}")
    try:
        files = component_files(spec, entry)
    except PermissionError as exc:
        return status("unsafe_format", f"{entry.path}: {exc}")
    except (FileNotFoundError, KeyError, ValueError) as exc:
        return status("missing", f"{entry.path}: {exc}; expected {spec.what}; public weights: {spec.suggestion}")
    if spec.name == "controlnet":
        refusal = controlnet_refusal(entry.path, entry.config_file(), entry.options)
        if refusal is not None:
            return status("unsupported", f"{entry.path}: {refusal}", files=files)
    if not verify:
        return status("ok", f"{entry.path} (not hashed)", files=files, expected_sha256=entry.sha256)
    actual = component_digest(entry, files)
    if entry.sha256 is None:
        return status(
            "unpinned", f"{entry.path}: no sha256 pin; if this is the file you meant, add sha256 = \"{actual}\"",
            files=files, actual_sha256=actual,
        )
    if actual != entry.sha256:
        return status(
            "mismatch", f"{entry.path}: sha256 {actual} differs from the pin {entry.sha256}",
            files=files, actual_sha256=actual, expected_sha256=entry.sha256,
        )
    return status("ok", str(entry.path), files=files, actual_sha256=actual, expected_sha256=entry.sha256)


def check_weights(path: str | os.PathLike[str] | None = None, *, verify: bool = True) -> WeightsReport:
    """Every component's state; never raises for a missing file (``xp models check`` prints the report)."""
    toml, searched = find_models_toml(path)
    if toml is None:
        unset = (check_component(spec, ComponentEntry(spec.name, None, None)) for spec in COMPONENTS)
        return WeightsReport(None, searched, tuple(unset))
    entries = parse_models_toml(toml)
    return WeightsReport(
        toml, searched, tuple(check_component(spec, entries[spec.name], verify=verify) for spec in COMPONENTS)
    )


@dataclass(frozen=True)
class VerifiedWeights:
    """Components whose files exist and match their pins; what :mod:`.loading` reads."""

    toml: Path
    entries: dict[str, ComponentEntry]
    digests: dict[str, str] = field(default_factory=dict)
    """Each component's sha256 (a file's, or a folder's manifest digest): what the C2PA record names."""

    def get(self, name: str) -> ComponentEntry | None:
        return self.entries.get(name)


def require_weights(path: str | os.PathLike[str] | None = None) -> VerifiedWeights:
    """The verified weights, or a typed error that names each missing component and where to put it."""
    report = check_weights(path)
    if report.toml is None:
        raise DiffusionWeightsMissingError(
            "the diffusion engine needs a models.toml naming its weights, and none was found (looked at "
            + ", ".join(report.searched)
            + "). Copy the template models.toml from the xp-sdk repository there (or set XP_MODELS_TOML), "
            "download the public weights it suggests, fill in each path, and run `xp models check`.",
            missing=tuple(s.name for s in report.problems),
        )
    problems = report.problems
    if problems and all(s.state == "mismatch" for s in problems):
        raise ModelHashMismatchError(
            "refusing to load diffusion weights that are not the pinned files: "
            + "; ".join(s.message for s in problems)
        )
    if problems:
        raise DiffusionWeightsMissingError(
            f"the diffusion engine cannot run with {report.toml}: "
            + "; ".join(f"{s.name} ({s.state}): {s.message}" for s in problems)
            + f". Edit {report.toml} and run `xp models check`.",
            missing=tuple(s.name for s in problems),
        )
    entries = parse_models_toml(report.toml)
    usable = {s.name: s.actual_sha256 for s in report.statuses if s.usable}
    return VerifiedWeights(
        report.toml,
        {name: entries[name] for name in usable},
        {name: digest for name, digest in usable.items() if digest is not None},
    )

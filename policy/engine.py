"""``Policy``: a loaded, validated Cedar policy set that decides access requests and fails closed."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence

import cedarpy

from policy import explain
from policy.access import AccessRequest
from policy.cedar_request import to_cedar
from policy.decision import Decision, Reason
from policy.loader import CompiledPolicies, LoadedPolicy, compile_sources, default_source, load_schema, read_sources

_log = logging.getLogger(__name__)

# Cedar names the policy an evaluation error came from as "policy `<id>`".
_ERRING_POLICY = re.compile(r"policy `([^`]*)`")


class Policy:
    """The policy set every generation is gated by: the defaults plus any operator ``.cedar`` files."""

    def __init__(self, compiled: CompiledPolicies) -> None:
        self._compiled = compiled
        self._by_id: dict[str, LoadedPolicy] = {p.policy_id: p for p in compiled.policies}
        self._order = {p.policy_id: index for index, p in enumerate(compiled.policies)}

    @classmethod
    def load(cls, extra: Sequence[str | os.PathLike[str]] = (), *, include_default: bool = True) -> Policy:
        """Load and validate the defaults plus ``extra`` files or directories; ``PolicyLoadError`` if any fail."""
        sources = [default_source()] if include_default else []
        sources.extend(read_sources(extra))
        return cls(compile_sources(sources, load_schema()))

    @property
    def policy_ids(self) -> tuple[str, ...]:
        return tuple(p.policy_id for p in self._compiled.policies)

    @property
    def digest(self) -> str:
        """SHA-256 over the loaded policy texts, in load order: which policy set made a decision."""
        return self._compiled.digest

    def decide(self, request: AccessRequest) -> Decision:
        """Allow or deny ``request``; any failure to evaluate is a deny with reason ``policy_error``."""
        action = str(getattr(request, "action", ""))
        try:
            call = to_cedar(request)
            compiled = self._compiled
            result = cedarpy.is_authorized(call.request, compiled.policy_set, call.entities, compiled.schema)
            return self._interpret(request, result)
        except Exception as exc:  # fail closed: nothing from evaluation may escape as an allow or an exception
            _log.exception("policy evaluation failed for %s", action)
            reason = explain.policy_error(f"{type(exc).__name__}: {exc}")
            return Decision(allowed=False, reasons=(reason,), action=action)

    def _fired(self, ids: Sequence[str]) -> list[LoadedPolicy]:
        known = [i for i in ids if i in self._by_id]
        return [self._by_id[i] for i in sorted(set(known), key=self._order.__getitem__)]

    def _interpret(self, request: AccessRequest, result: cedarpy.AuthzResult) -> Decision:
        action = str(request.action)
        fired = self._fired(result.diagnostics.reasons)
        errors = list(result.diagnostics.errors)
        if result.decision is cedarpy.Decision.Allow and not errors:
            return Decision(
                allowed=True,
                policy_ids=tuple(p.policy_id for p in fired),
                reasons=tuple(explain.reason_for(p, request) for p in fired),
                action=action,
            )
        # A policy that errors is skipped by Cedar, so a forbid that broke could otherwise let a request through.
        forbids = [p for p in fired if p.effect == "forbid"] if result.decision is cedarpy.Decision.Deny else []
        reasons: list[Reason] = [explain.reason_for(p, request) for p in forbids]
        policy_ids = [p.policy_id for p in forbids]
        for error in errors or ([] if result.decision is cedarpy.Decision.Deny else ["Cedar reached no decision"]):
            match = _ERRING_POLICY.search(error)
            erring = match.group(1) if match and match.group(1) in self._by_id else None
            reasons.append(explain.policy_error(error, erring))
            if erring is not None and erring not in policy_ids:
                policy_ids.append(erring)
        if not reasons:
            reasons.append(explain.not_permitted(request))
        return Decision(allowed=False, policy_ids=tuple(policy_ids), reasons=tuple(reasons), action=action)

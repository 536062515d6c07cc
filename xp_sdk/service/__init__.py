"""``Service``: every gated operation over one deployment, for any caller presenting an API key.

The embedded ``Client`` and the HTTP server both run on it, so the gate, the audit events and the order of one
generation are written once. Each resource's operations live in their own module, all on the shared ground of
``ServiceCore`` (core.py); ``Service`` is all of them together.
"""

from __future__ import annotations

from xp_sdk.service.audit_reads import AuditReads
from xp_sdk.service.consent_video import ConsentVideos
from xp_sdk.service.consents import Consents
from xp_sdk.service.core import PhotoInput, ServiceCore, sha256_file
from xp_sdk.service.evidence import evidence_path
from xp_sdk.service.generations import AuditedGeneration, Generations
from xp_sdk.service.keys import ApiKeys
from xp_sdk.service.subjects import Subjects, read_photo
from xp_sdk.service.verifications import Verifications

__all__ = ["AuditedGeneration", "PhotoInput", "Service", "ServiceCore", "evidence_path", "read_photo", "sha256_file"]


class Service(Generations, Verifications, AuditReads, Subjects, Consents, ConsentVideos, ApiKeys):
    """Every gated operation over one deployment. Safe to share across threads: the database pool and the policy
    set are shared, the face embedder sits behind a lock, and every call authenticates afresh (a revoked key stops
    working at once)."""

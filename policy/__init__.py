"""Consent and Cedar policy decisions. Knows no pixels.

Not built yet: the gate arrives with the gate-and-audit issue (see ../shared/ARCHITECTURE.md).
"""

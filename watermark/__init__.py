"""Invisible video watermark and C2PA signing/reading. Knows no database.

Not built yet: provenance arrives with the provenance issue (see ../shared/ARCHITECTURE.md).
"""

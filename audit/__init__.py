"""The tamper-evident audit log and its database.

Not built yet: the record arrives with the gate-and-audit issue (see ../shared/ARCHITECTURE.md).
"""

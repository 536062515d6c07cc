"""State that every process of a deployment shares through Redis (``XP_REDIS_URL``): per-key rate limits here,
the server's job queue in ``xp_sdk.server.redis_jobs``. Without Redis, limits stay in the audit database and jobs
in one server process."""

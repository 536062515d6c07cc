"""Secrets kept out of uvicorn's access log: a client that puts its API key (or a token, a password) in the URL
must not have it written, in clear, to every log the server ships.

uvicorn logs ``'%s - "%s %s HTTP/%s" %d'`` with the request target (path and query string, as sent) as the third
argument; ``AccessLogSecrets`` rewrites that argument before any handler formats it."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote, unquote_plus

ACCESS_LOGGER = "uvicorn.access"
MASK = "***"
# An xp API key, or anything that starts like one (a key cut short or with extra characters is still a secret).
_API_KEY = re.compile(r"xp_[0-9a-f]{12}_[A-Za-z0-9_-]+")
_SECRET_NAMES = frozenset(
    {"api_key", "apikey", "api-key", "key", "token", "access_token", "auth", "authorization", "password", "secret"}
)
_TARGET_ARGUMENT = 2


def scrub_request_target(target: str) -> str:
    """``target`` (``/path?query``) with every path segment or query value that holds an API key, and the value of
    every parameter named like a secret (``api_key``, ``key``, ``token``, ``password``, ...), replaced by ***. Both
    are judged percent-decoded, so an encoded key is caught too."""
    path, separator, query = target.partition("?")
    segments = [MASK if _API_KEY.search(unquote(segment)) else segment for segment in path.split("/")]
    if not separator:
        return "/".join(segments)
    return "/".join(segments) + "?" + "&".join(_scrub_parameter(p) for p in query.split("&"))


def _scrub_parameter(parameter: str) -> str:
    name, equals, value = parameter.partition("=")
    if not equals:
        return MASK if _API_KEY.search(unquote_plus(name)) else parameter
    if unquote_plus(name).strip().lower() in _SECRET_NAMES or _API_KEY.search(unquote_plus(value)):
        return f"{name}={MASK}"
    return parameter


class AccessLogSecrets(logging.Filter):
    """Rewrites the request target of each access log record (see ``scrub_request_target``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > _TARGET_ARGUMENT:
            target = args[_TARGET_ARGUMENT]
            if isinstance(target, str):
                scrubbed = list(args)
                scrubbed[_TARGET_ARGUMENT] = scrub_request_target(target)
                record.args = tuple(scrubbed)
        return True


def install_access_log_filter() -> None:
    """Add the filter to uvicorn's access logger, once. A logger's filters survive uvicorn's own logging set-up
    (``logging.config.dictConfig`` replaces handlers, not filters), so this holds however the app is served."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, AccessLogSecrets) for f in logger.filters):
        logger.addFilter(AccessLogSecrets())

"""Client configuration: frozen value objects and the one place environment variables are read."""

from __future__ import annotations

import math
import os
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlsplit

import attrs

from ._errors import ConfigurationError, InvalidRequestError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "VERSION",
    "ClientConfig",
    "PollPolicy",
    "RetryPolicy",
    "origin_of",
    "resolve_config",
]


def _package_version() -> str:
    try:
        return version("aihubmix-async")
    except PackageNotFoundError:  # pragma: no cover - running from an uninstalled source tree
        return "0+unknown"


#: The installed distribution's version ("0+unknown" from an uninstalled source tree).
VERSION = _package_version()
USER_AGENT = f"aihubmix-async/{VERSION}"

DEFAULT_BASE_URL = "https://aihubmix.com"
#: gpt-image at high quality takes 90 s and more; Qwen edits are slow too.
DEFAULT_TIMEOUT = 300.0
DEFAULT_MAX_CONCURRENCY = 64
#: The largest real answers are a few base64 images of ~3 MB each.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise InvalidRequestError(
            f"{attribute.name} must be a positive number, got {value!r}", field=attribute.name
        )


def _non_negative_int(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidRequestError(
            f"{attribute.name} must be a non-negative integer, got {value!r}",
            field=attribute.name,
        )


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How failed requests are retried: exponential backoff with full jitter.

    A generation POST is billed, so it is resent only when the server surely did not process it:
    connect-phase failures, 429 and 503. ``retry_unsafe_posts=True`` also resends after read
    timeouts, resets and other 5xx (risking a double charge). GETs (polls, downloads) always retry.
    """

    max_retries: int = attrs.field(default=2, validator=_non_negative_int)
    initial_backoff: float = attrs.field(default=0.5, validator=_positive)
    max_backoff: float = attrs.field(default=8.0, validator=_positive)
    #: A Retry-After longer than this is not waited for: the error is raised instead.
    max_retry_after: float = attrs.field(default=120.0, validator=_positive)
    #: The most one call (a generation: submit, polls, downloads) waits between retries in
    #: all; a server answering 429 forever cannot hold an item longer than this.
    max_retry_wait: float = attrs.field(default=300.0, validator=_positive)
    retry_unsafe_posts: bool = False


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How task-style generations (Flux async) are polled: backoff under one deadline."""

    initial_interval: float = attrs.field(default=1.0, validator=_positive)
    max_interval: float = attrs.field(default=5.0, validator=_positive)
    multiplier: float = attrs.field(default=1.5, validator=_positive)
    deadline: float = attrs.field(default=300.0, validator=_positive)


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL, lower-cased, with the default port made explicit."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def _check_url(name: str, url: str) -> str:
    try:
        parts = urlsplit(url)
        has_userinfo = "@" in parts.netloc
        hostname = parts.hostname
        parts.port  # noqa: B018 - parsed lazily: raises ValueError for a port over 65535
    except ValueError:  # e.g. a bad port: say so without echoing what may hold a secret
        raise InvalidRequestError(
            f"{name} is not a valid URL (its host or port, 0-65535, does not parse)", field=name
        ) from None
    # Credentials in the URL would show in reprs and logs and be sent to every host: refuse
    # them without echoing the URL (the message must not leak what it refuses).
    if has_userinfo:
        raise ConfigurationError(
            f"{name} must not carry credentials (user:password@); pass the key as api_key"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"{name} must not carry a query string or fragment (a key there would leak);"
            " pass the key as api_key"
        )
    if parts.scheme not in ("http", "https") or not hostname:
        raise InvalidRequestError(f"{name} must be an http(s) URL, got {url!r}", field=name)
    return url.rstrip("/")


def _default_tasks_url(base_url: str) -> str:
    # The docs put the tasks endpoint on api.aihubmix.com; an overridden base serves it itself.
    parts = urlsplit(base_url)
    if parts.hostname == "aihubmix.com":
        return f"{parts.scheme}://api.aihubmix.com"
    return base_url


def _mask(key: str | None) -> str:
    return "None" if key is None else "'sk-***'"


@attrs.frozen(kw_only=True, repr=False)
class ClientConfig:
    """Resolved settings of a :class:`Client`. The key is never shown by ``repr``."""

    api_key: str | None
    base_url: str
    tasks_url: str
    timeout: float
    max_concurrency: int
    max_response_bytes: int
    retry: RetryPolicy
    poll: PollPolicy

    def __repr__(self) -> str:
        return (
            f"ClientConfig(api_key={_mask(self.api_key)}, base_url={self.base_url!r}, "
            f"tasks_url={self.tasks_url!r}, timeout={self.timeout}, "
            f"max_concurrency={self.max_concurrency}, retry={self.retry!r}, poll={self.poll!r})"
        )

    def trusted_origins(self) -> frozenset[str]:
        """Origins that may receive the API key; image hosts are never among them."""
        return frozenset({origin_of(self.base_url), origin_of(self.tasks_url)})


def resolve_config(
    *,
    api_key: str | None,
    base_url: str | None,
    tasks_url: str | None,
    timeout: float,
    max_retries: int | None,
    max_concurrency: int,
    max_response_bytes: int,
    retry: RetryPolicy | None,
    poll: PollPolicy | None,
) -> ClientConfig:
    """Explicit arguments win; otherwise ``AIHUBMIX_*`` variables; otherwise defaults."""
    key = api_key if api_key is not None else os.environ.get("AIHUBMIX_API_KEY") or None
    base = _check_url(
        "base_url", base_url or os.environ.get("AIHUBMIX_BASE_URL") or DEFAULT_BASE_URL
    )
    tasks = _check_url("tasks_url", tasks_url or _default_tasks_url(base))
    if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
        raise InvalidRequestError(
            f"timeout must be a positive number of seconds, got {timeout!r}", field="timeout"
        )
    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise InvalidRequestError(
            f"max_concurrency must be an integer >= 1, got {max_concurrency!r}",
            field="max_concurrency",
        )
    if not isinstance(max_response_bytes, int) or max_response_bytes < 1024:
        raise InvalidRequestError(
            f"max_response_bytes must be an integer >= 1024, got {max_response_bytes!r}",
            field="max_response_bytes",
        )
    policy = retry or RetryPolicy()
    if max_retries is not None:
        policy = attrs.evolve(policy, max_retries=max_retries)
    return ClientConfig(
        api_key=key,
        base_url=base,
        tasks_url=tasks,
        timeout=float(timeout),
        max_concurrency=max_concurrency,
        max_response_bytes=max_response_bytes,
        retry=policy,
        poll=poll or PollPolicy(),
    )

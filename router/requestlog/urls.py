"""`log.url`: which store it names (SQLite file or PostgreSQL), and how to show it without its password."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from router.requestlog.errors import InvalidURLError


@dataclass(frozen=True)
class StoreURL:
    """A parsed `log.url`: the engine, and a file path (SQLite) or a libpq URL (PostgreSQL)."""

    engine: Literal["sqlite", "postgresql"]
    target: str

    @property
    def path(self) -> Path:
        return Path(self.target)


def parse_url(url: str) -> StoreURL:
    """Parse `sqlite:///relative.db`, `sqlite:////abs/path.db` or `postgresql://user@host:port/db`."""
    scheme, _, rest = url.partition("://")
    if scheme == "sqlite":
        if not rest.startswith("/") or rest in ("/", "/:memory:"):
            raise InvalidURLError("a SQLite log URL is sqlite:///PATH (three slashes, then the file path)")
        return StoreURL("sqlite", rest[1:])
    if scheme in ("postgresql", "postgres"):
        if not rest:
            raise InvalidURLError("a PostgreSQL log URL is postgresql://USER@HOST:PORT/DBNAME")
        return StoreURL("postgresql", url)
    raise InvalidURLError(f"log.url must start with sqlite:/// or postgresql://, not {redact_url(url)!r}")


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, fit for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))

"""Redis URLs of the tests: one database of a server, TCP or unix socket alike."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def redis_url_with_db(url: str, db: int) -> str:
    """`url` on database `db`: a TCP URL's path, a unix socket URL's `db` query (the
    embedded Redis listens on a socket)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        query["db"] = str(db)
        # Built by hand: urlunsplit drops the "//" of an empty host ("unix:/tmp/..."),
        # which redis-py refuses.
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{db}"))

"""A rig's Dolt remotes: list, add, remove; and the one way sync and pull reach a rig's Dolt.

A remote lives in the rig's own database (Dolt's `dolt_remotes`), so what `dolt remote -v` and
bd see is what we wrote.  While the server runs, every step goes through it over SQL (agents keep
their connections); when it is stopped, through Dolt's embedded engine in the rig's folder (`dolt
sql`, the same procedures), under the town lock so no server starts meanwhile.

A URL is whatever Dolt accepts (file://, https://, aws://, gs://, a DoltHub `org/repo`), with two
refusals of ours: a file URL must be absolute and plain (Dolt would resolve `file://x` against
whoever runs it: the server's data dir), and never inside the town's `.dolt-data` or `daemon/`.
Credentials in a URL (`https://user:token@host`, a query's values) are never printed: every URL
we show is `masked`, and every message Dolt gives back is `scrubbed` of the URLs it may repeat.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from ..errors import ConfigError, RigError, SqlFailure, UnsafeFile
from ..files import privilege
from ..files.datadir import scan_data_dir, validate_rig_name
from ..settings import DoltSettings
from ..sql import sqlclient
from ..town import Town

CONNECT = 5.0  # seconds to reach the server and log in
REMOTE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")  # always fullmatch
HIDDEN = "***"


def mask(url: str) -> str:
    """The URL as we may print it: a password (or a lone token) before '@' and every query value hidden."""
    if "://" not in url:  # a DoltHub `org/repo`, or something Dolt will refuse: nothing before an '@' shown
        return re.sub(r"^[^/]*@", f"{HIDDEN}@", url.split("?", 1)[0]) + ("?" + HIDDEN if "?" in url else "")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/@]*@", f"//{HIDDEN}@", url.split("?", 1)[0]) + ("?" + HIDDEN if "?" in url else "")
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
        netloc = f"{user}:{HIDDEN}@{host}" if user else f"{HIDDEN}@{host}"
    query = parts.query
    if query:
        query = "&".join(f"{pair.split('=', 1)[0]}={HIDDEN}" if "=" in pair else HIDDEN for pair in query.split("&"))
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secrets(url: str) -> list[str]:
    """The parts of a URL that mask() hides, longest first."""
    found = [url]
    if "://" not in url and "@" in url:
        found.append(url.split("@", 1)[0])
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return found
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found.append(userinfo.split(":", 1)[1] if ":" in userinfo else userinfo)
    found += [pair.split("=", 1)[-1] for pair in parts.query.split("&") if pair]
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def scrub(text: str, urls: Iterable[str]) -> str:
    """`text` (Dolt's words) with every URL masked and every credential in them hidden."""
    for url in urls:
        text = text.replace(url, mask(url))
        for secret in _secrets(url)[1:]:
            text = text.replace(secret, HIDDEN)
    return text


def check_name(name: object) -> str:
    if not isinstance(name, str) or not REMOTE_NAME.fullmatch(name):
        raise ConfigError(
            f"invalid remote name {name!r}: use 1-64 letters, digits, '_', '-' or '.', not starting with "
            "'-' or '.' (for example: origin)"
        )
    return name


def check_url(town: Town, url: object) -> str:
    """A remote URL we may hand to Dolt (see the module's docstring); Dolt judges the rest."""
    from .backup import file_path

    text = url.strip() if isinstance(url, str) else ""
    if not text or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ConfigError(
            f"invalid remote URL {mask(str(url))!r}: give a URL Dolt accepts, such as file:///srv/dolt/hq "
            "or https://doltremoteapi.dolthub.com/org/repo"
        )
    try:
        path = file_path(text, kind="remote")
    except UnicodeDecodeError:
        raise ConfigError(f"invalid remote URL {mask(text)!r}: its %-escapes are not UTF-8 text") from None
    if path is not None:
        real = os.path.realpath(path)
        for folder, what in ((town.data_dir, "the rig databases"), (town.daemon_dir, "the server's run files")):
            base = os.path.realpath(folder)
            if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
                raise ConfigError(
                    f"remote URL {text} is inside {folder}, which holds {what}: choose a folder outside it"
                )
    return text


class Remote(NamedTuple):
    rig: str
    name: str
    url: str  # as Dolt holds it: never print it, print `shown`
    branch: str  # the rig's checked-out branch, which sync pushes and pull pulls

    @property
    def shown(self) -> str:
        return mask(self.url)


def named_rig(town: Town, rig: str) -> str:
    """`rig` when .dolt-data holds it as a rig; else one line: unknown, or a planted link."""
    validate_rig_name(rig)
    found = scan_data_dir(town)
    if rig in found.names:
        return rig
    why = found.refused(rig)
    if why:
        raise UnsafeFile(why)
    if any(path.name == rig for path in found.linked):
        raise UnsafeFile(
            f"{town.rig_dir(rig)} is a symlink (Dolt never serves a linked database): move the database "
            "itself there and remove the link"
        )
    raise RigError(f"no rig {rig} in {town.data_dir}; gt-dolt list shows the rigs")


class DoltSaid(RigError):
    """Dolt refused a step in one rig (its reason, scrubbed of credentials): that rig failed, the others go on."""


class Access:
    """How to run a Dolt statement in a rig: the running server (port), else the embedded engine."""

    def __init__(self, town: Town, settings: DoltSettings, port: int | None) -> None:
        self.town = town
        self.settings = settings.with_overrides(port=port) if port is not None else settings
        self.server = port is not None
        self.checked: set[str] = set()

    @property
    def through(self) -> str:
        return "the server" if self.server else "the Dolt CLI"

    def rows(
        self, rig: str, statement: str, params: Sequence[str] = (), urls: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """The statement's rows (column -> value); Dolt's refusal is DoltSaid, scrubbed of `urls`
        and of the parameters.  A server that stops answering raises SqlFailure (not one rig's fault)."""
        hide = [*urls, *(p for p in params if "://" in p)]
        if self.server:
            said, rows = sqlclient.call(
                self.settings,
                lambda conn: _run(conn, rig, statement, params),
                what=f"reach rig {rig}",
                timeout=CONNECT,
                long=sqlclient.LONG_CALL,
            )
        else:
            said, rows = self._embedded(rig, statement, params)
        if said is not None:
            raise DoltSaid(scrub(" ".join(said.split()), hide))
        return rows

    def _embedded(self, rig: str, statement: str, params: Sequence[str]) -> tuple[str | None, list[dict[str, Any]]]:
        from .backup import embedded_sql

        if rig not in self.checked:
            privilege.check_databases([self.town.rig_dir(rig)])  # the Dolt CLI opens it by path
            self.checked.add(rig)
        text = statement % tuple(sqlclient.quote_text(p) for p in params) if params else statement
        try:
            out = embedded_sql(self.settings, self.town.rig_dir(rig), text, "dolt", result_format="json")
        except RigError as exc:
            said = str(exc).split("(Dolt says: ", 1)[-1].removesuffix(")")
            return said.replace(f"error on line 1 for query {text}: ", ""), []
        rows: list[dict[str, Any]] = []
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows += [row for row in json.loads(line).get("rows", []) if isinstance(row, dict)]
                except (ValueError, AttributeError):
                    continue
        return None, rows


def _run(conn: Any, rig: str, statement: str, params: Sequence[str]) -> tuple[str | None, list[dict[str, Any]]]:
    import pymysql

    with conn.cursor() as cur:
        try:
            cur.execute(f"USE {sqlclient.quote_name(rig)}")
            cur.execute(statement, tuple(params) or None)
        except pymysql.err.MySQLError as exc:
            if sqlclient.classify(exc) != "error":
                raise
            return sqlclient.message_of(exc), []
        columns = [column[0] for column in cur.description or ()]
        return None, [dict(zip(columns, row, strict=False)) for row in cur.fetchall()]


def remotes_of(access: Access, rig: str) -> list[Remote]:
    rows = access.rows(rig, "SELECT name, url, active_branch() AS branch FROM dolt_remotes ORDER BY name")
    return [Remote(rig, str(r["name"]), str(r["url"]), str(r.get("branch") or "main")) for r in rows]


def add(access: Access, rig: str, name: str, url: str) -> Remote:
    """Add remote `name` to rig `rig`; Dolt's refusal (a URL it rejects, a name taken) is a ConfigError."""
    try:
        access.rows(rig, "CALL DOLT_REMOTE('add', %s, %s)", (name, url), urls=[url])
    except DoltSaid as exc:
        raise ConfigError(f"Dolt refused remote {name} ({mask(url)}) for rig {rig}: {exc}") from None
    return next(r for r in remotes_of(access, rig) if r.name == name)


def remove(access: Access, rig: str, name: str) -> Remote:
    known = {r.name: r for r in remotes_of(access, rig)}
    if name not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise ConfigError(f"rig {rig} has no remote {name} (its remotes: {listed}); gt-dolt remote list --rig {rig}")
    access.rows(rig, "CALL DOLT_REMOTE('remove', %s)", (name,), urls=[known[name].url])
    return known[name]


def refuse_silent(exc: SqlFailure) -> bool:
    """Whether a server failure ends the whole run (it stopped answering) rather than one rig."""
    return exc.kind != "error"

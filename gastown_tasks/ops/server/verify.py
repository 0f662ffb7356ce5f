"""After a start, the server is what `start` will say it is: where it listens, and what it serves.

The config Dolt reads is ours and only we may write its folder (ops/files/privilege.py), but a claim is
checked, not assumed: the listening sockets of the server's own pid (psutil) must be the
configured SQL address and port, plus only the other listeners the config asks for (metrics, a
cluster's remotesapi, an MCP server); and the process must serve the town's own data dir through
the town's config, holding files of every rig it was started for.  Anything else means Dolt read
a config that is not the one gt-dolt wrote: `start` stops that server and fails.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from typing import Any

import psutil

from ..host import procs
from ..settings import DoltSettings
from ..town import Town

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


WILDCARDS: set[Address] = {ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("::")}


def addresses_of(host: str) -> set[Address]:
    """The addresses a configured host means: itself when it is one, else what it resolves to.
    Every interface is either wildcard: Go listens on `::` (both families) for 0.0.0.0."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return set(WILDCARDS) if address in WILDCARDS else {address}
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return set()
    return {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}


def _plain(ip: str) -> Address | None:
    try:
        address = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        return None
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return mapped or address


def expected(settings: DoltSettings, config: Mapping[str, Any]) -> list[tuple[set[Address] | None, int]]:
    """(addresses, port) the config asks Dolt to listen on; None: every interface (Dolt's own rule
    for remotesapi and MCP)."""
    wanted: list[tuple[set[Address] | None, int]] = [(addresses_of(settings.host), settings.port)]
    metrics = config.get("metrics")
    if isinstance(metrics, Mapping) and isinstance(metrics.get("port"), int):
        wanted.append((addresses_of(str(metrics.get("host") or settings.host)), metrics["port"]))
    for section in (config.get("remotesapi"), config.get("mcp_server")):
        if isinstance(section, Mapping) and isinstance(section.get("port"), int):
            wanted.append((None, section["port"]))
    cluster = config.get("cluster")
    remotesapi = cluster.get("remotesapi") if isinstance(cluster, Mapping) else None
    if isinstance(remotesapi, Mapping) and isinstance(remotesapi.get("port"), int):
        wanted.append((None, remotesapi["port"]))
    return wanted


def _allowed(ip: Address | None, port: int, wanted: list[tuple[set[Address] | None, int]]) -> bool:
    return any(p == port and (ips is None or ip in ips) for ips, p in wanted)


def shown(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def listener_problem(
    proc: psutil.Process, settings: DoltSettings, config: Mapping[str, Any], bound: bool = True
) -> str | None:
    """What is wrong with where the server listens, or None when it is exactly what was configured.
    `bound` False: it may still be binding, so only a listener beyond the config is wrong."""
    listening = procs.listen_addresses(proc)
    wanted = expected(settings, config)
    sql_ips = wanted[0][0] or set()
    on_sql = [(ip, port) for ip, port in listening if port == settings.port and _plain(ip) in sql_ips]
    strays = [(ip, port) for ip, port in listening if not _allowed(_plain(ip), port, wanted)]
    if strays:
        where = ", ".join(shown(ip, port) for ip, port in strays)
        return f"it listens on {where}, beyond the configured {settings.address}"
    if not on_sql and bound:
        seen = ", ".join(shown(ip, port) for ip, port in listening) or "nothing it shows"
        return f"it does not listen on the configured {settings.address} (it listens on {seen})"
    return None


def serving_problem(proc: psutil.Process, town: Town, rigs: list[str]) -> str | None:
    """What is wrong with what the server serves, or None when it is the town's data dir."""
    if not procs.serves_town(proc, town.data_dir, town.config_file):
        served = procs.served_data_dir(proc) or "a folder it does not show"
        return f"it serves {served}, not the town's {town.data_dir} through {town.config_file}"
    held = procs.held_children(proc, town.data_dir)
    missing = [town.rig_dir(name) for name in rigs if name not in held]
    if missing:
        named = ", ".join(str(path) for path in missing[:3])
        return f"it holds no file of {named}: the databases it serves are not the town's"
    return None


def verify_started(
    proc: psutil.Process,
    town: Town,
    settings: DoltSettings,
    config: Mapping[str, Any],
    rigs: list[str] | None,
    bound: bool = True,
) -> str | None:
    """One message when the started server is not what start would claim; None when it is.
    `rigs` None: only where it listens (while it starts, it may not hold every rig yet); `bound`
    False: nor may it listen on the SQL port yet."""
    problem = listener_problem(proc, settings, config, bound)
    if problem is None and rigs is not None:
        problem = serving_problem(proc, town, rigs)
    if problem is None:
        return None
    return (
        f"dolt sql-server (pid {proc.pid}) is not the server gt-dolt configured: {problem}. Dolt read a config "
        f"that is not the one gt-dolt wrote ({town.config_file}), so it was stopped; check who else can write "
        f"{town.data_dir} (gt-dolt doctor), then start again"
    )

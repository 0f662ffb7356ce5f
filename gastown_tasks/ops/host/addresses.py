"""Which addresses are this machine's: whether a host named in the settings is here or elsewhere.

The lowest rung of a remote town (ops/access/remote.py): cluster peers and gt's port rule ask it too,
so it imports nothing above the settings.
"""

from __future__ import annotations

import ipaddress
import socket

from ..settings import DoltSettings

WILDCARDS = {"0.0.0.0", "::"}
RESOLVE_TIMEOUT = 2.0  # seconds a host name may take to resolve (getaddrinfo has no timeout of its own)


def _local_addresses() -> set[str]:
    import psutil

    found = set(WILDCARDS)
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                found.add(address.address.split("%")[0])
    return found


def _is_local_ip(text: str, local: set[str]) -> bool:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None  # ::ffff:127.0.0.1
    return ip.is_loopback or str(ip) in local or bool(mapped and (mapped.is_loopback or str(mapped) in local))


def addresses_of(host: str, timeout: float = RESOLVE_TIMEOUT) -> set[str]:
    """The IP addresses a host stands for (an address stands for itself); empty when a name does
    not resolve within `timeout`."""
    try:
        return {str(ipaddress.ip_address(host))}
    except ValueError:
        pass
    import threading

    found: list[set[str]] = []

    def resolve() -> None:
        try:
            found.append({str(info[4][0]).split("%")[0] for info in socket.getaddrinfo(host, None)})
        except (OSError, UnicodeError):
            found.append(set())

    worker = threading.Thread(target=resolve, daemon=True)  # a hung resolver is left behind, not waited for
    worker.start()
    worker.join(timeout)
    return found[0] if found else set()


def is_local_host(host: str) -> bool:
    """The host is loopback, a wildcard, or an address of this machine, under any spelling (names
    are resolved)."""
    candidates = addresses_of(host)
    if not candidates:
        return False
    local = _local_addresses()
    return any(_is_local_ip(candidate, local) for candidate in candidates)


def is_remote(settings: DoltSettings) -> bool:
    """The host is neither loopback nor one of this machine's addresses (names are resolved)."""
    return not settings.is_loopback and not is_local_host(settings.host)

"""Every address Siyu calls out to: one check, and a transport that connects only where it checked.

Siyu makes requests to addresses that administrators type in: the WeCom API base URL, outbound
webhook endpoints, the firm's verification hook. Without a check, such an address can point at the
installation's own network (127.0.0.1, 10.0.0.0/8, the cloud metadata service at 169.254.169.254)
and turn Siyu into a proxy into it: a server-side request forgery.

* `check_url` is the check made when an address is saved: https (plain http only to a network the
  installation trusts, below), a host name, and every address the name resolves to public (a name
  that does not resolve from here at the moment is saved: the transport checks it when called).
* `GuardedTransport` makes the same check at each request, after DNS resolution, and connects to
  the address it checked (the Host header and TLS SNI keep the name, so certificates are verified
  against the name): a name that resolves to a public address when saved and to 127.0.0.1 later
  (DNS rebinding) is refused at connect time.
* `client()` is the httpx client every outbound call uses.

Refused: loopback, private (RFC 1918, fc00::/7), link-local (169.254.0.0/16, fe80::/10), shared
address space (100.64.0.0/10), unspecified (0.0.0.0, ::), multicast, reserved and documentation
ranges, and IPv6 forms of all of these (IPv4-mapped ::ffff:a.b.c.d, 6to4, NAT64 prefixes are
judged by the IPv4 address they carry).

`SIYU_OUTBOUND_LOCAL_NETWORKS` (default none) lists networks that may be called even though they
are not public, over http too: the WeCom emulator and test hooks on 127.0.0.1 in the demo and the
tests, or a firm's gateway on its own network. It is an explicit decision of the installation."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpx

from siyu.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges that are not public even where Python's `is_global` lags behind (it differs by version).
_NOT_PUBLIC = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "fec0::/10",
    "ff00::/8",
)]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundRefused(httpx.ConnectError):
    """A request to an address Siyu does not call (not public, not in the trusted local networks)."""


def local_networks() -> list[Network]:
    """The networks this installation allows although they are not public (SIYU_OUTBOUND_LOCAL_NETWORKS)."""
    from siyu.config import get_settings

    return _parse_networks(get_settings().outbound_local_networks)


def _parse_networks(values: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(v.strip(), strict=False) for v in values if v and v.strip()]


def _embedded_v4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    # IPv4-compatible (deprecated) ::a.b.c.d
    if int(address) >> 32 == 0 and int(address) > 1:
        return ipaddress.IPv4Address(int(address))
    return None


def is_public(address: IPAddress) -> bool:
    """True for an address on the public internet; False for anything in the refused ranges."""
    inner = _embedded_v4(address)
    if inner is not None:
        return is_public(inner)
    if any(address in net for net in _NOT_PUBLIC if net.version == address.version):
        return False
    return address.is_global and not address.is_multicast


def address_allowed(address: IPAddress, networks: list[Network] | None = None) -> bool:
    networks = local_networks() if networks is None else networks
    inner = _embedded_v4(address) or address
    if any(inner in net for net in networks if net.version == inner.version):
        return True
    return is_public(address)


def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses of `host` (an IP literal is its own address)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[IPAddress] = []
    for *_x, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in seen:
            seen.append(address)
    return seen


def checked_addresses(host: str, port: int, networks: list[Network] | None = None) -> list[IPAddress]:
    """Resolves `host` and checks every address; raises OutboundRefused if any is not allowed (a
    name with one private address among public ones is refused: which one is used is not ours)."""
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        raise OutboundRefused(f"cannot resolve the host {host}") from None
    if not addresses:
        raise OutboundRefused(f"cannot resolve the host {host}")
    networks = local_networks() if networks is None else networks
    refused = [a for a in addresses if not address_allowed(a, networks)]
    if refused:
        raise OutboundRefused(f"the host {host} resolves to an address Siyu does not call")
    return addresses


def _in_local(addresses: list[IPAddress], networks: list[Network]) -> bool:
    return all(any((_embedded_v4(a) or a) in net for net in networks if net.version == (_embedded_v4(a) or a).version)
               for a in addresses)


def check_url(value: object, *, field: str = "url", allowed_hosts: Iterable[str] | None = None,
              max_length: int = 500) -> str:
    """An outbound address as saved: https to a public address (plain http only to the trusted local
    networks); with `allowed_hosts`, the host must be one of them unless it is in a trusted local
    network. Raises InvalidInput naming `field`."""
    url = value.strip() if isinstance(value, str) else ""
    if not url or len(url) > max_length or any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidInput("a URL of at most %(n)s characters is required", field=field, params={"n": max_length})
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidInput("this is not a valid URL", field=field) from None
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
        raise InvalidInput("this is not a valid URL", field=field)
    networks = local_networks()
    if (allowed_hosts is not None and parts.scheme == "https"
            and host.lower() in {h.lower() for h in allowed_hosts}):
        return url  # a named service's own host: checked at connect time, saved even while DNS is down
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        addresses = []  # not resolvable from here now: saved, and checked when called (GuardedTransport)
    if any(not address_allowed(a, networks) for a in addresses):
        raise InvalidInput("this address is not on the public internet: Siyu does not call it", field=field)
    local = bool(networks) and bool(addresses) and _in_local(addresses, networks)
    if parts.scheme != "https" and not local:
        raise InvalidInput("the URL must start with https://", field=field)
    if allowed_hosts is not None and not local and host.lower() not in {h.lower() for h in allowed_hosts}:
        raise InvalidInput("the host %(host)s is not one this installation calls", field=field,
                           params={"host": host})
    return url


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport that resolves the host, checks every address, and connects to a checked
    address with the original Host header and TLS server name (no second lookup that could answer
    differently)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = checked_addresses(host, port)
        address = addresses[0]
        if str(address) != host:
            extensions = dict(request.extensions)
            if url.scheme == "https":
                extensions.setdefault("sni_hostname", host)
            request.url = url.copy_with(host=str(address))
            request.extensions = extensions
            # httpx set the Host header from the name when the request was built; it stays.
        return super().handle_request(request)


def client(*, timeout: float = 10.0, **kwargs) -> httpx.Client:
    """The httpx client for every outbound call: guarded, no environment proxies, no redirects."""
    return httpx.Client(transport=GuardedTransport(), timeout=timeout, trust_env=False, follow_redirects=False,
                        **kwargs)


def post(url: str, **kwargs) -> httpx.Response:
    timeout = kwargs.pop("timeout", 10.0)
    with client(timeout=timeout) as c:
        return c.post(url, **kwargs)


def get(url: str, **kwargs) -> httpx.Response:
    timeout = kwargs.pop("timeout", 10.0)
    with client(timeout=timeout) as c:
        return c.get(url, **kwargs)

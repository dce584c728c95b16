"""The address guard of send/client.py, held exactly: scoped addresses, the unwrapped IPv6 forms
of a public address (which stay allowed), global-scope multicast, and the socket the factory
hands aiohttp (the family, type and protocol it was asked for)."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from egress.send.client import BlockedAddressError, address_allowed, guarded_socket_factory

CASES = [  # id, address as the resolver gives it, allowed?
    ("public-v6-with-scope-id", "2606:2800:220:1:248:1893:25c8:1946%eth0", True),
    ("link-local-with-scope-id", "fe80::1%eth0", False),
    ("6to4-of-a-public-address", "2002:5db8:d822::1", True),
    ("nat64-of-a-public-address", "64:ff9b::5db8:d822", True),
    ("nat64-of-a-private-address", "64:ff9b::a00:1", False),
    ("v4-mapped-public-hex", "::ffff:5db8:d822", True),
    ("global-scope-multicast-v6", "ff0e::1", False),
    ("documentation-v6", "2001:db8::1", False),
    ("empty", "", False),
    ("only-a-scope", "%eth0", False),
]


@pytest.mark.parametrize("ip, allowed", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_address_allowed(ip, allowed):
    assert address_allowed(ip) is allowed


@pytest.mark.parametrize("ip, family", [("93.184.216.34", socket.AF_INET), ("2606:2800:220:1::1", socket.AF_INET6)],
                         ids=["v4", "v6"])
def test_the_socket_is_the_one_asked_for(ip, family):
    sock = guarded_socket_factory(False)((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, 443)))
    try:
        assert (sock.family, sock.type, sock.proto) == (family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    finally:
        sock.close()


NETWORKS = [  # id, allowed networks, address, blocked?
    ("scoped-address-in-an-allowed-v6-net", (ipaddress.ip_network("fe80::/64"),), "fe80::1%eth0", False),
    ("garbage-with-networks", (ipaddress.ip_network("10.0.0.0/8"),), "not-an-ip", True),
    ("second-network-matches", (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.168.0.0/16")),
     "192.168.1.1", False),
    ("no-networks", (), "192.168.1.1", True),
]


@pytest.mark.parametrize("nets, ip, blocked", [c[1:] for c in NETWORKS], ids=[c[0] for c in NETWORKS])
def test_allowed_private_networks(nets, ip, blocked):
    info = (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 443))
    factory = guarded_socket_factory(nets)
    if blocked:
        with pytest.raises(BlockedAddressError) as err:
            factory(info)
        assert "not a public address" in str(err.value)
    else:
        factory(info).close()


def test_the_factory_guards_by_default():
    with pytest.raises(BlockedAddressError):
        guarded_socket_factory()((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 443)))

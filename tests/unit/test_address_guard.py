import pytest

from egress.send.client import address_allowed

CASES = [
    ("public-v4", "93.184.216.34", True),
    ("public-v6", "2606:2800:220:1:248:1893:25c8:1946", True),
    ("loopback", "127.0.0.1", False),
    ("loopback-other", "127.8.9.10", False),
    ("rfc1918-10", "10.1.2.3", False),
    ("rfc1918-172", "172.16.0.1", False),
    ("rfc1918-192", "192.168.1.1", False),
    ("link-local", "169.254.1.1", False),
    ("metadata-aws", "169.254.169.254", False),
    ("metadata-aws-v6", "fd00:ec2::254", False),
    ("cgnat", "100.64.0.1", False),
    ("multicast", "224.0.0.1", False),
    ("unspecified", "0.0.0.0", False),
    ("broadcast", "255.255.255.255", False),
    ("v6-loopback", "::1", False),
    ("v6-ula", "fd12:3456::1", False),
    ("v6-link-local", "fe80::1", False),
    ("v4-mapped-loopback", "::ffff:127.0.0.1", False),
    ("v4-mapped-metadata", "::ffff:169.254.169.254", False),
    ("v4-mapped-public", "::ffff:93.184.216.34", True),
    ("6to4-private", "2002:0a00:0001::1", False),
    ("nat64-loopback", "64:ff9b::7f00:1", False),
    ("garbage", "not-an-ip", False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_address_allowed(case):
    _, ip, allowed = case
    assert address_allowed(ip) is allowed


def _info(ip, family=None):
    import socket
    family = family or (socket.AF_INET6 if ":" in ip else socket.AF_INET)
    return (family, socket.SOCK_STREAM, 6, "", (ip, 443))


@pytest.mark.parametrize("allow,ip,blocked", [
    (False, "169.254.169.254", True),
    (False, "::ffff:10.0.0.1", True),
    (False, "93.184.216.34", False),
    (True, "10.0.0.1", False),
    ("net", "10.1.2.3", False),
    ("net", "10.9.0.1", True),
    ("net", "127.0.0.1", True),
], ids=["metadata", "mapped-private", "public", "allow-all", "in-allowed-net", "outside-allowed-net",
        "loopback-not-in-net"])
def test_socket_factory_refuses_before_connecting(allow, ip, blocked):
    import ipaddress

    from egress.send.client import BlockedAddressError, guarded_socket_factory
    allow = (ipaddress.ip_network("10.1.0.0/16"),) if allow == "net" else allow
    factory = guarded_socket_factory(allow)
    if blocked:
        with pytest.raises(BlockedAddressError):
            factory(_info(ip))
    else:
        factory(_info(ip)).close()  # a socket object only; nothing is connected

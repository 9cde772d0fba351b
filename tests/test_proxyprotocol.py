"""The PROXY protocol kit: headers written by hand from the spec (not by the library)
sent by a client to ``ExpectProxyHeader``, each version and family (IPv4, IPv6, UNKNOWN,
LOCAL, Unix paths, TLVs), the parsed header from what the server recorded, and every way
a proxy can get the header wrong failing in the protocol's words beside its correct twin,
in a loop. Also the encoders against the same hand-written bytes, and ``send_header``
read by a hand-written receiver.
"""

from __future__ import annotations

import doctest
import re
import socket
import struct
from typing import Any

import pytest
from _twins import wrong_then_right

import embeddedserver.proxyprotocol
from embeddedserver import CommandServer, Expect, ReadLine
from embeddedserver.proxyprotocol import (
    SIGNATURE,
    TLV_ALPN,
    TLV_AUTHORITY,
    ExpectProxyHeader,
    HeaderError,
    ProxyHeader,
    parse,
    send_header,
    v1,
    v2,
)

ROUNDS = 10
CLIENT_TIMEOUT = 10.0


# ---------------------------------------------------------------------------
# headers by hand, from the spec (haproxy.org/download/2.9/doc/proxy-protocol.txt)
# ---------------------------------------------------------------------------


def hand_v2(command: int, family: int, addresses: bytes, tlvs: bytes = b"") -> bytes:
    body = addresses + tlvs
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20 | command, family]) + struct.pack(
        "!H", len(body)) + body


def hand_inet(src: str, dst: str, sport: int, dport: int) -> bytes:
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    return (socket.inet_pton(family, src) + socket.inet_pton(family, dst)
            + struct.pack("!HH", sport, dport))


def hand_tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


HAND = {
    "v1 TCP4": b"PROXY TCP4 10.0.0.1 10.0.0.2 5555 443\r\n",
    "v1 TCP6": b"PROXY TCP6 2001:db8::1 2001:db8::2 5555 443\r\n",
    "v1 UNKNOWN": b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
    "v2 TCP4": hand_v2(0x1, 0x11, hand_inet("10.0.0.1", "10.0.0.2", 5555, 443)),
    "v2 TCP6": hand_v2(0x1, 0x21, hand_inet("2001:db8::1", "2001:db8::2", 5555, 443)),
    "v2 UDP4": hand_v2(0x1, 0x12, hand_inet("10.0.0.1", "10.0.0.2", 53, 53)),
    "v2 LOCAL": hand_v2(0x0, 0x00, b""),
    "v2 UNIX": hand_v2(0x1, 0x31, b"/run/a.sock".ljust(108, b"\0") + b"/run/b".ljust(108, b"\0")),
    "v2 TLVs": hand_v2(0x1, 0x11, hand_inet("10.0.0.1", "10.0.0.2", 5555, 443),
                       hand_tlv(0x02, b"example.com") + hand_tlv(0x01, b"h2")),
}

PARSED = {
    "v1 TCP4": ProxyHeader(1, "PROXY", "TCP4", ("10.0.0.1", 5555), ("10.0.0.2", 443)),
    "v1 TCP6": ProxyHeader(1, "PROXY", "TCP6", ("2001:db8::1", 5555), ("2001:db8::2", 443)),
    "v1 UNKNOWN": ProxyHeader(1, "PROXY", "UNKNOWN", None, None),
    "v2 TCP4": ProxyHeader(2, "PROXY", "TCP4", ("10.0.0.1", 5555), ("10.0.0.2", 443)),
    "v2 TCP6": ProxyHeader(2, "PROXY", "TCP6", ("2001:db8::1", 5555), ("2001:db8::2", 443)),
    "v2 UDP4": ProxyHeader(2, "PROXY", "UDP4", ("10.0.0.1", 53), ("10.0.0.2", 53)),
    "v2 LOCAL": ProxyHeader(2, "LOCAL", "UNSPEC", None, None),
    "v2 UNIX": ProxyHeader(2, "PROXY", "UNIX", "/run/a.sock", "/run/b"),
    "v2 TLVs": ProxyHeader(2, "PROXY", "TCP4", ("10.0.0.1", 5555), ("10.0.0.2", 443),
                           ((0x02, b"example.com"), (0x01, b"h2"))),
}


@pytest.mark.parametrize("case", sorted(HAND))
def test_parse_reads_each_hand_written_header(case: str) -> None:
    header = parse(HAND[case])
    expected = PARSED[case]
    assert header == ProxyHeader(expected.version, expected.command, expected.family,
                                 expected.source, expected.destination, expected.tlvs,
                                 len(HAND[case]))


def test_the_encoders_write_what_the_spec_says() -> None:
    assert v1(("10.0.0.1", 5555), ("10.0.0.2", 443)) == HAND["v1 TCP4"]
    assert v1(("2001:db8::1", 5555), ("2001:db8::2", 443)) == HAND["v1 TCP6"]
    assert v1() == b"PROXY UNKNOWN\r\n"
    assert v2(("10.0.0.1", 5555), ("10.0.0.2", 443)) == HAND["v2 TCP4"]
    assert v2(("2001:db8::1", 5555), ("2001:db8::2", 443)) == HAND["v2 TCP6"]
    assert v2(("10.0.0.1", 53), ("10.0.0.2", 53), transport="dgram") == HAND["v2 UDP4"]
    assert v2(command="LOCAL") == HAND["v2 LOCAL"]
    assert v2("/run/a.sock", "/run/b") == HAND["v2 UNIX"]
    assert v2(("10.0.0.1", 5555), ("10.0.0.2", 443),
              tlvs=[(TLV_AUTHORITY, b"example.com"), (TLV_ALPN, b"h2")]) == HAND["v2 TLVs"]
    assert SIGNATURE == b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"


@pytest.mark.parametrize(("call", "words"), [
    (lambda: v1(("10.0.0.1", 1), ("::1", 2)), "must both be IPv4 or both IPv6"),
    (lambda: v1(("example.com", 1), ("10.0.0.1", 2)), "'example.com' is not an IPv4 or IPv6"),
    (lambda: v1(("10.0.0.1", 70000), ("10.0.0.1", 2)), "port must be an int from 0 to 65535"),
    (lambda: v1("10.0.0.1", "10.0.0.2"), "must be an (ip, port) tuple"),
    (lambda: v2(command="QUIT"), "command must be 'PROXY' or 'LOCAL', not 'QUIT'"),
    (lambda: v2(tlvs={300: b"x"}), "a TLV type is an int from 0 to 255, not 300"),
    (lambda: send_header(version=3), "version must be 1 or 2, not 3"),
    (lambda: send_header(command="LOCAL"), "use version=2"),
    (lambda: ExpectProxyHeader(version=3), "version must be 1, 2 or None"),
    (lambda: ExpectProxyHeader(family="TCP5"), "not 'TCP5'"),
    (lambda: ExpectProxyHeader(source=("10.0.0.1", -1)), "port must be an int"),
])
def test_bad_arguments_are_refused_where_given(call: Any, words: str) -> None:
    with pytest.raises((TypeError, ValueError), match=re.escape(words)):
        call()


def test_the_module_doctests_pass() -> None:
    assert doctest.testmod(embeddedserver.proxyprotocol).failed == 0


# ---------------------------------------------------------------------------
# a proxy-aware client against ExpectProxyHeader
# ---------------------------------------------------------------------------


def talk(server: CommandServer, data: bytes, shut: bool = False) -> bytes:
    """Connect, send *data* (the header and the request), read to the end."""
    with socket.create_connection(server.address, timeout=CLIENT_TIMEOUT) as client:
        client.sendall(data)
        if shut:
            client.shutdown(socket.SHUT_WR)
        return client.makefile("rb").read()


EXPECTATIONS = {
    "v1 TCP4": ExpectProxyHeader(("10.0.0.1", 5555), ("10.0.0.2", 443), version=1),
    "v1 TCP6": ExpectProxyHeader(("2001:db8:0::1", 5555), ("2001:db8::2", 443)),
    "v1 UNKNOWN": ExpectProxyHeader(family="UNKNOWN"),
    "v2 TCP4": ExpectProxyHeader(("10.0.0.1", 5555), ("10.0.0.2", 443), version=2),
    "v2 TCP6": ExpectProxyHeader(("2001:db8::1", 5555), family="TCP6"),
    "v2 UDP4": ExpectProxyHeader(("10.0.0.1", 53), family="UDP4"),
    "v2 LOCAL": ExpectProxyHeader(version=2, command="LOCAL"),
    "v2 UNIX": ExpectProxyHeader("/run/a.sock", "/run/b"),
    "v2 TLVs": ExpectProxyHeader(tlvs={TLV_AUTHORITY: b"example.com", TLV_ALPN: None}),
}


@pytest.mark.parametrize("case", sorted(HAND))
def test_a_client_sending_each_header_passes_and_the_header_is_recorded(case: str) -> None:
    script = [EXPECTATIONS[case], Expect(b"GET / HTTP/1.0\r\n\r\n"), "HTTP/1.0 204 x\r\n\r\n"]
    for _ in range(3):
        with CommandServer(script, verbose=False) as server:
            # header and request in one write, as proxies often send them
            assert talk(server, HAND[case] + b"GET / HTTP/1.0\r\n\r\n") == (
                b"HTTP/1.0 204 x\r\n\r\n")
            server.wait_for_connections(1)
        header = parse(server.received[0])
        assert (header.version, header.family, header.source) == (
            PARSED[case].version, PARSED[case].family, PARSED[case].source)


def test_the_header_may_arrive_a_byte_at_a_time() -> None:
    data = HAND["v2 TLVs"] + b"ping\n"
    with CommandServer([ExpectProxyHeader(("10.0.0.1", 5555)), ReadLine(), "pong\n"],
                       verbose=False) as server:
        with socket.create_connection(server.address, timeout=CLIENT_TIMEOUT) as client:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(data)):
                client.sendall(data[i:i + 1])
            assert client.makefile("rb").read() == b"pong\n"
        server.wait_for_connections(1)
    assert server.received == [HAND["v2 TLVs"], b"ping\n"]


WRONG_PROXIES = {
    # the step, what the wrong proxy sends, what its correct twin sends, the failure's words
    "the wrong source": (
        ExpectProxyHeader(source=("10.0.0.1", 5555)),
        b"PROXY TCP4 10.0.0.2 10.0.0.9 5555 443\r\n", HAND["v1 TCP4"],
        "PROXY v1 header claims source 10.0.0.2:5555, expected 10.0.0.1:5555"),
    "the wrong destination port, v2": (
        ExpectProxyHeader(destination=("2001:db8::2", 443)),
        hand_v2(0x1, 0x21, hand_inet("2001:db8::1", "2001:db8::2", 5555, 80)), HAND["v2 TCP6"],
        "PROXY v2 header claims destination [2001:db8::2]:80, expected [2001:db8::2]:443"),
    "no header at all": (
        ExpectProxyHeader(), b"GET / HTTP/1.0\r\n\r\n", HAND["v1 TCP4"],
        "not a PROXY header: neither 'PROXY ' (v1) nor the v2 signature begins b'GET /"),
    "v1 where v2 is wanted": (
        ExpectProxyHeader(version=2), HAND["v1 TCP4"], HAND["v2 TCP4"],
        "not a PROXY v2 header: the v2 signature is missing; the client sent b'PROXY TCP4"),
    "v2 where v1 is wanted": (
        ExpectProxyHeader(version=1), HAND["v2 TCP4"], HAND["v1 TCP4"],
        "not a PROXY v1 header: it does not start with 'PROXY '"),
    "an unknown v1 family": (
        ExpectProxyHeader(), b"PROXY TCP5 1.2.3.4 1.2.3.5 1 2\r\n", HAND["v1 TCP4"],
        "unknown protocol family 'TCP5' (v1 has TCP4, TCP6 and UNKNOWN)"),
    "an IPv6 address in TCP4": (
        ExpectProxyHeader(), b"PROXY TCP4 ::1 ::1 1 2\r\n", HAND["v1 TCP4"],
        "the source address '::1' is not an IPv4 address (TCP4)"),
    "a v1 field missing": (
        ExpectProxyHeader(), b"PROXY TCP4 10.0.0.1 10.0.0.2 5555\r\n", HAND["v1 TCP4"],
        "has 5 fields, expected 6"),
    "a v1 line with no end": (
        ExpectProxyHeader(), b"PROXY UNKNOWN " + b"x" * 120, HAND["v1 UNKNOWN"],
        "PROXY v1 header has no \\r\\n in its first 107 bytes"),
    "a v2 version nibble of 1": (
        ExpectProxyHeader(), SIGNATURE + b"\x11\x11\x00\x0c" + bytes(12), HAND["v2 TCP4"],
        "PROXY v2 header has version 1 in byte 12 (0x11), expected 2"),
    "a v2 length too short": (
        ExpectProxyHeader(), SIGNATURE + b"\x21\x21\x00\x0c" + bytes(12), HAND["v2 TCP6"],
        "PROXY v2 header's length 12 is too short for its TCP6 addresses (36 bytes)"),
    "a TLV past the end": (
        ExpectProxyHeader(),
        hand_v2(0x1, 0x11, hand_inet("10.0.0.1", "10.0.0.2", 1, 2), b"\x05\x00\x09abc"),
        HAND["v2 TLVs"], "TLV 0x05 (UNIQUE_ID) claims 9 bytes, only 3 remain in the header"),
    "a missing TLV": (
        ExpectProxyHeader(tlvs={TLV_AUTHORITY: b"example.com"}), HAND["v2 TCP4"],
        HAND["v2 TLVs"], "PROXY v2 header has no TLV 0x02 (AUTHORITY) (it has: none)"),
    "LOCAL where addresses are wanted": (
        ExpectProxyHeader(source=("10.0.0.1", 5555)), HAND["v2 LOCAL"], HAND["v2 TCP4"],
        "PROXY v2 header is LOCAL and claims no source, expected source 10.0.0.1:5555"),
    "a header cut short": (
        ExpectProxyHeader(), HAND["v2 TCP4"][:20], HAND["v2 TCP4"],
        "the client closed the connection inside the PROXY header, after 20 bytes"),
}


@pytest.mark.parametrize("case", sorted(WRONG_PROXIES))
def test_a_wrong_header_fails_in_the_protocols_words_and_its_twin_passes(case: str) -> None:
    step, wrong_bytes, right_bytes, words = WRONG_PROXIES[case]
    wrong_then_right(step, b"hello", wrong_bytes, right_bytes, words, ROUNDS)


def test_a_wrong_header_report_names_the_step_and_shows_the_bytes() -> None:
    with CommandServer([ExpectProxyHeader(("10.0.0.1", 5555), version=1)], verbose=False) as srv:
        talk(srv, b"PROXY TCP4 10.0.0.2 10.0.0.9 5555 443\r\n", shut=True)
        failure = srv.assert_failed("mismatch", step=0)
    message = failure.message()
    assert "ExpectProxyHeader(source=('10.0.0.1', 5555), version=1)" in message
    assert "expected: a PROXY v1 header with source 10.0.0.1:5555" in message
    assert "received: b'PROXY TCP4 10.0.0.2 10.0.0.9 5555 443\\r\\n'" in message


@pytest.mark.parametrize("bad", [b"PROXY TCP4 1.2.3.4 1.2.3.5 1 2\r\nextra", b"PROXY TC", b""])
def test_parse_refuses_what_is_not_exactly_one_header(bad: bytes) -> None:
    with pytest.raises(HeaderError):
        parse(bad)


# ---------------------------------------------------------------------------
# send_header: a server that opens with a header, read by a hand-written receiver
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_send_header_opens_the_connection_with_the_header(version: int) -> None:
    step = send_header(("192.0.2.7", 40000), ("192.0.2.1", 25), version=version)  # type: ignore[arg-type]
    with CommandServer([step, "220 ready\r\n"], verbose=False) as server:
        data = talk(server, b"", shut=True)
        server.wait_for_connections(1)
    if version == 1:
        head, _, rest = data.partition(b"\r\n")
        assert head.split(b" ") == [b"PROXY", b"TCP4", b"192.0.2.7", b"192.0.2.1", b"40000",
                                    b"25"]
    else:
        assert data[:12] == SIGNATURE and data[12:14] == b"\x21\x11"
        (length,) = struct.unpack("!H", data[14:16])
        body, rest = data[16:16 + length], data[16 + length:]
        assert socket.inet_ntop(socket.AF_INET, body[:4]) == "192.0.2.7"
        assert struct.unpack("!HH", body[8:12]) == (40000, 25)
    assert rest == b"220 ready\r\n"

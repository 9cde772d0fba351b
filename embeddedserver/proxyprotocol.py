"""The PROXY protocol (HAProxy's, v1 text and v2 binary): headers to send, and a step that
reads the header a proxy sends and checks the addresses it claims. No I/O.

Model
-----
A proxy or load balancer that speaks the PROXY protocol opens its connection to the
server with one header saying who the real client is: v1 is a line
(``PROXY TCP4 10.0.0.1 10.0.0.2 5555 443\\r\\n``), v2 a 16-byte binary head (a 12-byte
signature, version and command, family, length) with the addresses and optional TLVs.
Then the client's own bytes follow, untouched.

* To test **a proxy** (the client here: it must send the header), put
  ``ExpectProxyHeader(source=("10.0.0.1", 5555), destination=..., version=1|2|None)``
  first in the script: it reads one header, v1 or v2, and fails in the protocol's terms
  ("PROXY v1 header claims source 10.0.0.2:5555, expected 10.0.0.1:5555", "not a PROXY v2
  header: the v2 signature is missing"). Its chunk is the header; ``parse(chunk)`` gives
  the ``ProxyHeader`` back (from ``server.received``).
* To test **a server behind a proxy**, or a client that reads a header, ``v1(source,
  destination)`` and ``v2(source, destination, tlvs=...)`` make the bytes, and
  ``send_header(...)`` the step that sends them.

An address is ``(ip, port)`` (IPv4 or IPv6, as text) or, in v2, a Unix socket path; no
addresses at all is v1's ``UNKNOWN`` and v2's ``UNSPEC`` (with ``command="LOCAL"``: a
health check of the proxy's own).

    >>> v1(("10.0.0.1", 5555), ("10.0.0.2", 443))
    b'PROXY TCP4 10.0.0.1 10.0.0.2 5555 443\\r\\n'
    >>> parse(v2(("::1", 1), ("::2", 2), tlvs={TLV_AUTHORITY: b"example.com"})).source
    ('::1', 1)

Sections: headers (the value) - encoding - parsing - the step.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from . import _args
from ._match import Matcher, Mismatch
from ._text import format_address
from .record import show_bytes
from .steps import ReadStep, Send

__all__ = [
    "SIGNATURE",
    "TLV_ALPN",
    "TLV_AUTHORITY",
    "TLV_CRC32C",
    "TLV_NETNS",
    "TLV_NOOP",
    "TLV_SSL",
    "TLV_UNIQUE_ID",
    "V1_MAX_LENGTH",
    "Address",
    "ExpectProxyHeader",
    "HeaderError",
    "ProxyHeader",
    "parse",
    "send_header",
    "v1",
    "v2",
]

#: The 12 bytes every v2 header starts with.
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: The longest a v1 header may be, its CRLF included.
V1_MAX_LENGTH = 107
#: The TLV types the spec names (``ProxyHeader.tlv(TLV_AUTHORITY)``).
TLV_ALPN = 0x01
TLV_AUTHORITY = 0x02
TLV_CRC32C = 0x03
TLV_NOOP = 0x04
TLV_UNIQUE_ID = 0x05
TLV_SSL = 0x20
TLV_NETNS = 0x30
_TLV_NAMES = {TLV_ALPN: "ALPN", TLV_AUTHORITY: "AUTHORITY", TLV_CRC32C: "CRC32C",
              TLV_NOOP: "NOOP", TLV_UNIQUE_ID: "UNIQUE_ID", TLV_SSL: "SSL", TLV_NETNS: "NETNS"}

#: ``(ip, port)``, or (v2 only) a Unix socket path.
Address: TypeAlias = "tuple[str, int] | str"

_V1 = b"PROXY "
# v2's family byte: address family (high nibble) and transport (low nibble).
_FAMILIES = {0x00: "UNSPEC", 0x11: "TCP4", 0x12: "UDP4", 0x21: "TCP6", 0x22: "UDP6",
             0x31: "UNIX", 0x32: "UNIX_DGRAM"}
_FAMILY_BYTES = {name: code for code, name in _FAMILIES.items()}
_ADDRESS_SIZES = {0x0: 0, 0x1: 12, 0x2: 36, 0x3: 216}
_UNIX_PATH = 108

# ---------------------------------------------------------------------------
# headers
# ---------------------------------------------------------------------------


class HeaderError(ValueError):
    """Bytes that are not a PROXY header: the message says why, in the protocol's terms."""


@dataclass(frozen=True)
class ProxyHeader:
    """One PROXY header, as ``parse`` reads it.

    ``version`` 1 or 2; ``command`` "PROXY" (or v2's "LOCAL": the proxy's own connection,
    its addresses to be ignored); ``family`` "TCP4", "TCP6", v1's "UNKNOWN", v2's "UDP4",
    "UDP6", "UNIX", "UNIX_DGRAM", "UNSPEC"; ``source`` and ``destination`` ``(ip, port)``,
    a path, or None (no addresses: UNKNOWN, UNSPEC, LOCAL); ``tlvs`` v2's (type, value)
    pairs in order; ``length`` the header's size in bytes.
    """

    version: int
    command: str
    family: str
    source: tuple[str, int] | str | None
    destination: tuple[str, int] | str | None
    tlvs: tuple[tuple[int, bytes], ...] = field(default=())
    length: int = 0

    def tlv(self, kind: int) -> bytes | None:
        """The value of the first TLV of type *kind*, or None."""
        return next((value for t, value in self.tlvs if t == kind), None)

    def describe(self) -> str:
        """``PROXY v1 TCP4 from 10.0.0.1:5555 to 10.0.0.2:443``, for messages."""
        head = f"{self.command} v{self.version} {self.family}"
        if self.source is None:
            return head + " (no addresses)"
        return f"{head} from {_show(self.source)} to {_show(self.destination)}"


def _show(address: tuple[str, int] | str | None) -> str:
    if address is None:
        return "(none)"
    if isinstance(address, str):
        return f"unix:{address}"
    return format_address(address)


def _tlv_name(kind: int) -> str:
    name = _TLV_NAMES.get(kind)
    return f"0x{kind:02x}" + (f" ({name})" if name else "")


# ---------------------------------------------------------------------------
# encoding
# ---------------------------------------------------------------------------


def _ip(address: object, what: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    if not (isinstance(address, tuple) and len(address) == 2):
        raise TypeError(f"{what} must be an (ip, port) tuple such as ('10.0.0.1', 5555), "
                        f"not {address!r}")
    host, port = address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{what}: {host!r} is not an IPv4 or IPv6 address (a PROXY header "
                         "carries addresses, not names)") from None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"{what}: port must be an int from 0 to 65535, not {port!r}")
    return ip, port


def _pair(source: object, destination: object) -> tuple[
        tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int],
        tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    src, dst = _ip(source, "source"), _ip(destination, "destination")
    if src[0].version != dst[0].version:
        raise ValueError(f"source {source!r} and destination {destination!r} must both be "
                         "IPv4 or both IPv6")
    return src, dst


def v1(source: tuple[str, int] | None = None,
       destination: tuple[str, int] | None = None) -> bytes:
    """A v1 header: ``PROXY TCP4|TCP6 <source> <destination> <ports>\\r\\n``, or with no
    addresses ``PROXY UNKNOWN\\r\\n``. Raises TypeError/ValueError naming a bad address.

    >>> v1(("::1", 40000), ("::1", 80))
    b'PROXY TCP6 ::1 ::1 40000 80\\r\\n'
    """
    if source is None and destination is None:
        return b"PROXY UNKNOWN\r\n"
    (sip, sport), (dip, dport) = _pair(source, destination)
    family = "TCP4" if sip.version == 4 else "TCP6"
    return f"PROXY {family} {sip} {dip} {sport} {dport}\r\n".encode("ascii")


def _tlv_pairs(tlvs: Mapping[int, bytes] | Sequence[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    pairs = list(tlvs.items()) if isinstance(tlvs, Mapping) else list(tlvs)
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"tlvs must be a dict or (type, value) pairs, not {pair!r}")
        kind, value = pair
        if isinstance(kind, bool) or not isinstance(kind, int) or not 0 <= kind <= 255:
            raise ValueError(f"a TLV type is an int from 0 to 255, not {kind!r}")
        if not isinstance(value, (bytes, bytearray)) or len(value) > 65535:
            raise TypeError(f"TLV {_tlv_name(kind)}: the value must be bytes (at most 65535), "
                            f"not {value!r}")
    return [(kind, bytes(value)) for kind, value in pairs]


def v2(source: Address | None = None, destination: Address | None = None, *,
       command: Literal["PROXY", "LOCAL"] = "PROXY",
       transport: Literal["stream", "dgram"] = "stream",
       tlvs: Mapping[int, bytes] | Sequence[tuple[int, bytes]] = ()) -> bytes:
    """A v2 header: the signature, *command* (``"LOCAL"``: the proxy's own connection),
    the family (TCP/UDP over IPv4 or IPv6 from the addresses, UNIX for two paths, UNSPEC
    for none), the addresses, then *tlvs* (a dict or (type, value) pairs, in order).
    Raises TypeError/ValueError naming a bad argument.

    >>> v2(command="LOCAL")
    b'\\r\\n\\r\\n\\x00\\r\\nQUIT\\n \\x00\\x00\\x00'
    """
    if command not in ("PROXY", "LOCAL"):
        raise ValueError(f"command must be 'PROXY' or 'LOCAL', not {command!r}")
    if transport not in ("stream", "dgram"):
        raise ValueError(f"transport must be 'stream' or 'dgram', not {transport!r}")
    low = 0x1 if transport == "stream" else 0x2
    if source is None and destination is None:
        family, block = 0x00, b""
    elif isinstance(source, str) and isinstance(destination, str):
        paths = [p.encode("utf-8") for p in (source, destination)]
        if any(len(p) > _UNIX_PATH for p in paths):
            raise ValueError(f"a Unix path in a v2 header is at most {_UNIX_PATH} bytes")
        family, block = 0x30 | low, b"".join(p.ljust(_UNIX_PATH, b"\0") for p in paths)
    else:
        (sip, sport), (dip, dport) = _pair(source, destination)
        family = (0x10 if sip.version == 4 else 0x20) | low
        block = (sip.packed + dip.packed + sport.to_bytes(2, "big")
                 + dport.to_bytes(2, "big"))
    extra = b"".join(bytes([kind]) + len(value).to_bytes(2, "big") + value
                     for kind, value in _tlv_pairs(tlvs))
    body = block + extra
    if len(body) > 65535:
        raise ValueError(f"the header's addresses and TLVs take {len(body)} bytes, over 65535")
    version_command = 0x21 if command == "PROXY" else 0x20
    return SIGNATURE + bytes([version_command, family]) + len(body).to_bytes(2, "big") + body


def send_header(source: Address | None = None, destination: Address | None = None, *,
                version: Literal[1, 2] = 1,
                command: Literal["PROXY", "LOCAL"] = "PROXY",
                tlvs: Mapping[int, bytes] | Sequence[tuple[int, bytes]] = ()) -> Send:
    """A send step with a v1 or v2 header (see ``v1``, ``v2``).

    >>> send_header(("10.0.0.1", 5555), ("10.0.0.2", 443))
    Send(b'PROXY TCP4 10.0.0.1 10.0.0.2 5555 443\\r\\n')
    """
    if version == 1:
        if command != "PROXY" or tlvs:
            raise ValueError("a v1 header has no LOCAL command and no TLVs: use version=2")
        if isinstance(source, str) or isinstance(destination, str):
            raise ValueError("a v1 header carries no Unix paths: use version=2")
        return Send(v1(source, destination))
    if version == 2:
        return Send(v2(source, destination, command=command, tlvs=tlvs))
    raise ValueError(f"version must be 1 or 2, not {version!r}")


# ---------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------


def _which(buffer: bytes | bytearray, version: int | None) -> int | None:
    """1 or 2 once the start of *buffer* says which header it is, None while it could
    still be the one wanted; HeaderError once it cannot (or is not the *version* wanted)."""
    v1_start = _V1.startswith(buffer[:len(_V1)])
    v2_start = SIGNATURE.startswith(buffer[:len(SIGNATURE)])
    if v1_start and len(buffer) >= len(_V1):
        found: int | None = 1
    elif v2_start and len(buffer) >= len(SIGNATURE):
        found = 2
    else:
        found = None
    if found is not None and version in (None, found):
        return found
    if found is None and ((v1_start and version != 2) or (v2_start and version != 1)):
        return None
    shown = show_bytes(bytes(buffer[:48]), 48)
    if version == 2:
        what = " (a v1 header)" if v1_start else ""
        raise HeaderError(f"not a PROXY v2 header: the v2 signature is missing; the client "
                          f"sent {shown}{what}")
    if version == 1:
        what = " (the v2 signature: a v2 header)" if v2_start else ""
        raise HeaderError(f"not a PROXY v1 header: it does not start with 'PROXY '; the "
                          f"client sent {shown}{what}")
    raise HeaderError(f"not a PROXY header: neither 'PROXY ' (v1) nor the v2 signature "
                      f"begins {shown}")


def _v1_address(text: bytes, family: str, what: str) -> str:
    cls = ipaddress.IPv4Address if family == "TCP4" else ipaddress.IPv6Address
    try:
        return str(cls(text.decode("ascii")))
    except (ValueError, UnicodeDecodeError):
        kind = "IPv4" if family == "TCP4" else "IPv6"
        raise HeaderError(f"PROXY v1 header: the {what} address {text.decode('latin-1')!r} is "
                          f"not an {kind} address ({family})") from None


def _v1_port(text: bytes, what: str) -> int:
    if not text.isdigit() or len(text) > 5 or int(text) > 65535:
        raise HeaderError(f"PROXY v1 header: the {what} port {text.decode('latin-1')!r} is not "
                          "a port number (0 to 65535)")
    return int(text)


def _parse_v1(buffer: bytes | bytearray) -> ProxyHeader | None:
    end = buffer.find(b"\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if len(buffer) >= V1_MAX_LENGTH:
            raise HeaderError(f"PROXY v1 header has no \\r\\n in its first {V1_MAX_LENGTH} "
                              f"bytes (the longest a v1 header may be): "
                              f"{show_bytes(bytes(buffer[:V1_MAX_LENGTH]), 60)}")
        return None
    line = bytes(buffer[:end + 1])
    if not line.endswith(b"\r\n"):
        raise HeaderError(f"PROXY v1 header {show_bytes(line)} ends in \\n without the \\r "
                          "before it")
    fields = line[:-2].split(b" ")
    family = fields[1].decode("latin-1") if len(fields) > 1 else ""
    if family == "UNKNOWN":  # the rest of the line is to be ignored
        return ProxyHeader(1, "PROXY", "UNKNOWN", None, None, (), len(line))
    if family not in ("TCP4", "TCP6"):
        raise HeaderError(f"PROXY v1 header {show_bytes(line)}: unknown protocol family "
                          f"{family!r} (v1 has TCP4, TCP6 and UNKNOWN)")
    if len(fields) != 6:
        raise HeaderError(
            f"PROXY v1 header {show_bytes(line)} has {len(fields)} fields, expected 6: PROXY "
            f"{family} <source> <destination> <source port> <destination port>, one space "
            "apart")
    source = (_v1_address(fields[2], family, "source"), _v1_port(fields[4], "source"))
    destination = (_v1_address(fields[3], family, "destination"),
                   _v1_port(fields[5], "destination"))
    return ProxyHeader(1, "PROXY", family, source, destination, (), len(line))


def _parse_v2(buffer: bytes | bytearray) -> ProxyHeader | None:
    if len(buffer) < 16:
        return None
    version_command, family_byte = buffer[12], buffer[13]
    length = int.from_bytes(buffer[14:16], "big")
    if version_command >> 4 != 2:
        raise HeaderError(f"PROXY v2 header has version {version_command >> 4} in byte 12 "
                          f"(0x{version_command:02x}), expected 2 (0x2_)")
    command = {0x0: "LOCAL", 0x1: "PROXY"}.get(version_command & 0xF)
    if command is None:
        raise HeaderError(f"PROXY v2 header has command 0x{version_command & 0xF:x} in byte "
                          f"12 (0x{version_command:02x}): 0x0 is LOCAL, 0x1 PROXY")
    family = _FAMILIES.get(family_byte)
    if family is None:
        raise HeaderError(f"PROXY v2 header has the unknown family and transport "
                          f"0x{family_byte:02x} in byte 13 (known: "
                          + ", ".join(f"0x{c:02x} {n}" for c, n in _FAMILIES.items()) + ")")
    if len(buffer) < 16 + length:
        return None
    body = bytes(buffer[16:16 + length])
    size = _ADDRESS_SIZES[family_byte >> 4]
    if length < size:
        raise HeaderError(f"PROXY v2 header's length {length} is too short for its {family} "
                          f"addresses ({size} bytes)")
    source: tuple[str, int] | str | None = None
    destination: tuple[str, int] | str | None = None
    if command == "PROXY" and size:
        if family_byte >> 4 == 0x3:
            source, destination = (body[i:i + _UNIX_PATH].split(b"\0", 1)[0].decode(
                "utf-8", "surrogateescape") for i in (0, _UNIX_PATH))
        else:
            width = 4 if family_byte >> 4 == 0x1 else 16
            src, dst = body[:width], body[width:2 * width]
            ports = body[2 * width:2 * width + 4]
            source = (str(ipaddress.ip_address(src)), int.from_bytes(ports[:2], "big"))
            destination = (str(ipaddress.ip_address(dst)), int.from_bytes(ports[2:], "big"))
    tlvs: list[tuple[int, bytes]] = []
    at = size
    while at < length:
        if length - at < 3:
            raise HeaderError(f"PROXY v2 header: {length - at} bytes after the last TLV are "
                              "too few for another (a TLV is a type byte and a 2-byte length, "
                              "then the value)")
        kind, size_of = body[at], int.from_bytes(body[at + 1:at + 3], "big")
        if at + 3 + size_of > length:
            raise HeaderError(f"PROXY v2 header: TLV {_tlv_name(kind)} claims {size_of} bytes, "
                              f"only {length - at - 3} remain in the header")
        tlvs.append((kind, body[at + 3:at + 3 + size_of]))
        at += 3 + size_of
    return ProxyHeader(2, command, family, source, destination, tuple(tlvs), 16 + length)


def _parse_head(buffer: bytes | bytearray, version: int | None) -> ProxyHeader | None:
    which = _which(buffer, version)
    if which is None:
        return None
    return _parse_v1(buffer) if which == 1 else _parse_v2(buffer)


def parse(data: bytes | bytearray | memoryview) -> ProxyHeader:
    """The header *data* holds, exactly (an ``ExpectProxyHeader`` chunk, say from
    ``server.received``). Raises ``HeaderError`` (a ValueError) saying what is wrong.

    >>> parse(b"PROXY UNKNOWN\\r\\n").describe()
    'PROXY v1 UNKNOWN (no addresses)'
    """
    buffer = bytes(data)
    header = _parse_head(buffer, None)
    if header is None:
        raise HeaderError(f"an incomplete PROXY header: {show_bytes(buffer)}")
    if header.length != len(buffer):
        raise HeaderError(f"{len(buffer) - header.length} bytes follow the PROXY header: "
                          f"{show_bytes(buffer[header.length:], 40)}")
    return header


# ---------------------------------------------------------------------------
# the step
# ---------------------------------------------------------------------------


def _same(claimed: tuple[str, int] | str | None, expected: Address) -> bool:
    if claimed is None or isinstance(claimed, str) or isinstance(expected, str):
        return claimed == expected
    try:
        return (ipaddress.ip_address(claimed[0]) == ipaddress.ip_address(expected[0])
                and claimed[1] == expected[1])
    except ValueError:
        return False


class _HeaderMatcher(Matcher):
    def __init__(self, step: ExpectProxyHeader) -> None:
        self.step = step

    def check(self, buffer: bytearray, eof: bool) -> int | None:
        step = self.step
        try:
            header = _parse_head(buffer, step.version)
        except HeaderError as exc:
            raise Mismatch(str(exc), step.describe(), bytes(buffer[:256]), None) from None
        if header is None:
            if eof and buffer:
                raise Mismatch(
                    f"the client closed the connection inside the PROXY header, after "
                    f"{len(buffer)} bytes", step.describe(), bytes(buffer), len(buffer))
            return None
        why = step.mismatch(header)
        if why is not None:
            raise Mismatch(why, step.describe(), bytes(buffer[:header.length]), None)
        return header.length


class ExpectProxyHeader(ReadStep):
    """Expect the client (a proxy) to open with a PROXY header, and check what it claims.

    Arguments (each None: anything):
        source, destination: the ``(ip, port)`` (or a v2 Unix path) it must claim; an
            IPv6 address matches however it is written.
        version: 1 or 2.
        command: "PROXY" or "LOCAL" (v2).
        family: "TCP4", "TCP6", "UNKNOWN" (v1), "UNSPEC", "UDP4", "UDP6", "UNIX"...
        tlvs: {type: value} the v2 header must carry (value None: any value).

    The chunk is the header (``parse`` reads it); the client's own bytes are left for the
    next step. A malformed header fails at once, naming what is wrong.

    >>> ExpectProxyHeader(source=("10.0.0.1", 5555), version=1)
    ExpectProxyHeader(source=('10.0.0.1', 5555), version=1)
    """

    expects_exactly = True

    def __init__(self, source: Address | None = None, destination: Address | None = None, *,
                 version: Literal[1, 2] | None = None,
                 command: Literal["PROXY", "LOCAL"] | None = None,
                 family: str | None = None,
                 tlvs: Mapping[int, bytes | None] | None = None,
                 timeout: float | None = None) -> None:
        for name, address in (("source", source), ("destination", destination)):
            if address is not None and not isinstance(address, str):
                _ip(address, name)
        if version not in (None, 1, 2) or isinstance(version, bool):
            raise ValueError(f"version must be 1, 2 or None (either), not {version!r}")
        if command not in (None, "PROXY", "LOCAL"):
            raise ValueError(f"command must be 'PROXY', 'LOCAL' or None, not {command!r}")
        known = ("UNKNOWN", *_FAMILIES.values())
        if family is not None and family not in known:
            raise ValueError(f"family must be one of {', '.join(known)} or None, not {family!r}")
        if tlvs is not None:
            if not isinstance(tlvs, Mapping):
                raise TypeError(f"tlvs must be a dict {{type: value or None}}, not {tlvs!r}")
            _tlv_pairs({k: (v if v is not None else b"") for k, v in tlvs.items()})
        self.source = source
        self.destination = destination
        self.version = version
        self.command = command
        self.family = family
        self.tlvs = dict(tlvs) if tlvs is not None else None
        self.timeout = _args.optional_timeout(timeout)

    def _repr_args(self) -> list[str]:
        named = [("source", self.source), ("destination", self.destination),
                 ("version", self.version), ("command", self.command),
                 ("family", self.family), ("tlvs", self.tlvs)]
        return [f"{n}={v!r}" for n, v in named if v is not None] + self._timeout_arg()

    def describe(self) -> str:
        parts = []
        if self.source is not None:
            parts.append(f"source {_show(self.source)}")
        if self.destination is not None:
            parts.append(f"destination {_show(self.destination)}")
        for name in ("command", "family"):
            if getattr(self, name) is not None:
                parts.append(f"{name} {getattr(self, name)}")
        if self.tlvs:
            parts.append("TLVs " + ", ".join(_tlv_name(k) for k in self.tlvs))
        version = f" v{self.version}" if self.version else ""
        return f"a PROXY{version} header" + (" with " + ", ".join(parts) if parts else "")

    def mismatch(self, header: ProxyHeader) -> str | None:
        """How *header* differs from what the step expects, or None."""
        what = f"PROXY v{header.version} header"
        if self.command is not None and header.command != self.command:
            return f"{what} has command {header.command}, expected {self.command}"
        if self.family is not None and header.family != self.family:
            return f"{what} has family {header.family}, expected {self.family}"
        for name in ("source", "destination"):
            expected = getattr(self, name)
            claimed = getattr(header, name)
            if expected is None:
                continue
            if claimed is None:
                why = "is LOCAL" if header.command == "LOCAL" else f"is {header.family}"
                return f"{what} {why} and claims no {name}, expected {name} {_show(expected)}"
            if not _same(claimed, expected):
                return f"{what} claims {name} {_show(claimed)}, expected {_show(expected)}"
        for kind, value in (self.tlvs or {}).items():
            got = header.tlv(kind)
            if got is None:
                present = ", ".join(_tlv_name(t) for t, _ in header.tlvs) or "none"
                return f"{what} has no TLV {_tlv_name(kind)} (it has: {present})"
            if value is not None and got != value:
                return f"{what}: TLV {_tlv_name(kind)} is {show_bytes(got)}, expected " \
                       f"{show_bytes(bytes(value))}"
        return None

    def matcher(self) -> Matcher:
        return _HeaderMatcher(self)

"""Length prefixes of frames: a ``struct`` format or a varint. Pure, no I/O.

A frame (``ReadFrame``, ``ExpectFrame``, ``SendFrame``) is a length, then that many bytes.
The length is written one of two ways:

* a ``struct`` format for one unsigned integer: ``">I"`` (4 bytes, big-endian: the
  default), ``">H"``, ``"<Q"``, ``"!B"``...;
* ``"varint"``: protobuf's unsigned LEB128, 7 bits a byte, least significant group first,
  the high bit of each byte set while more follow (1 to 10 bytes for a 64-bit length).
  gRPC-style length-delimited messages (``writeDelimitedTo``) are framed so.

``length_prefix(spec)`` checks a spec and returns the ``LengthPrefix`` that encodes and
decodes it; a malformed varint on the wire raises ``BadPrefix``, which the frame matcher
turns into the step's failure.

    >>> varint = length_prefix("varint")
    >>> varint.encode(300)
    b'\\xac\\x02'
    >>> varint.decode(b"\\xac\\x02rest", eof=False)
    (2, 300)
"""

from __future__ import annotations

import struct

from .record import show_bytes

__all__ = ["VARINT", "VARINT_MAX_BYTES", "BadPrefix", "LengthPrefix", "length_prefix"]

#: The spec of a varint length prefix: ``ReadFrame(prefix=VARINT)``.
VARINT = "varint"
#: A varint of a 64-bit length takes at most this many bytes.
VARINT_MAX_BYTES = 10
_UNSIGNED = ("B", "H", "I", "L", "Q", "N")


class BadPrefix(Exception):
    """A length prefix on the wire can never be read: *reason* says why, in the words of
    a failure; *data* holds the prefix bytes; *truncated* is True when the client closed
    inside the prefix."""

    def __init__(self, reason: str, data: bytes, truncated: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.data = data
        self.truncated = truncated


class LengthPrefix:
    """One way to write a frame's length: *spec* is the struct format or ``"varint"``.
    ``packer`` is the ``struct.Struct`` of a struct prefix (None for a varint)."""

    __slots__ = ("packer", "spec")

    def __init__(self, spec: str, packer: struct.Struct | None) -> None:
        self.spec = spec
        self.packer = packer

    def describe(self) -> str:
        """``"a '>I' length prefix"``, ``"a varint length prefix"``."""
        return "a varint length prefix" if self.packer is None else (
            f"a {self.spec!r} length prefix")

    def encode(self, length: int) -> bytes:
        """The prefix for *length*; ValueError when it does not fit."""
        if self.packer is not None:
            try:
                return self.packer.pack(length)
            except struct.error:
                raise ValueError(
                    f"a payload of {length} bytes does not fit a {self.spec!r} length prefix"
                ) from None
        if length >= 1 << 64:
            raise ValueError(f"a payload of {length} bytes does not fit a 64-bit varint")
        out = bytearray()
        while length > 0x7F:
            out.append(length & 0x7F | 0x80)
            length >>= 7
        out.append(length)
        return bytes(out)

    def decode(self, buffer: bytes | bytearray | memoryview, eof: bool) -> tuple[int, int] | None:
        """(prefix size, length) once the prefix is in *buffer*, None while it needs more;
        ``BadPrefix`` for a varint that can never end (over 10 bytes, over 64 bits, or
        the client closed inside it: *eof*)."""
        packer = self.packer
        if packer is not None:
            if len(buffer) < packer.size:
                return None
            return packer.size, packer.unpack_from(buffer)[0]
        value = 0
        for i in range(min(len(buffer), VARINT_MAX_BYTES)):
            byte = buffer[i]
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if i == VARINT_MAX_BYTES - 1 and byte > 1:
                    raise BadPrefix(
                        f"the varint length prefix {show_bytes(bytes(buffer[:i + 1]))} is "
                        "larger than 64 bits", bytes(buffer[: i + 1]))
                return i + 1, value
        if len(buffer) >= VARINT_MAX_BYTES:
            head = bytes(buffer[:VARINT_MAX_BYTES])
            raise BadPrefix(
                f"the varint length prefix runs past {VARINT_MAX_BYTES} bytes (each of "
                f"{show_bytes(head)} has its continuation bit 0x80 set): not a "
                "protobuf-style length", head)
        if eof:
            head = bytes(buffer)
            where = (f"after {len(head)} byte{'' if len(head) == 1 else 's'} of it "
                     f"({show_bytes(head)}), the last with its continuation bit 0x80 set"
                     if head else "before its first byte")
            raise BadPrefix(
                f"the client closed the connection inside the varint length prefix, {where}",
                head, truncated=True)
        return None

    def __repr__(self) -> str:
        return f"LengthPrefix({self.spec!r})"


def length_prefix(spec: str) -> LengthPrefix:
    """Check *spec* (a struct format for one unsigned integer, or ``"varint"``) and
    return its ``LengthPrefix``. Raises TypeError/ValueError naming a bad spec."""
    if not isinstance(spec, str):
        raise TypeError(
            f"prefix must be a struct format string such as '>I', or 'varint', not {spec!r}")
    if spec == VARINT:
        return LengthPrefix(spec, None)
    try:
        packer = struct.Struct(spec)
    except struct.error as exc:
        raise ValueError(
            f"prefix {spec!r} is not a valid struct format: {exc} (or use 'varint')") from None
    # A length is one unsigned integer: a signed or float prefix would give negative or
    # fractional lengths, so only the unsigned integer codes are accepted.
    if spec.lstrip("@=<>!") not in _UNSIGNED:
        raise ValueError(
            f"prefix {spec!r} must describe exactly one unsigned integer, "
            "e.g. '>I', '>H', '<Q', '!B', or be 'varint'"
        )
    return LengthPrefix(spec, packer)

"""The protobuf wire format, for the parts of an entry the mapping writes as bytes.

Serialised protobuf messages concatenate: the bytes of a message followed by the bytes of more fields
parse as that message with those fields set (a repeated or map field gains the new items). The mapping
caches the serialised parts that rows share and joins them with the few parts each row has of its own,
which costs a fraction of setting every field through the protobuf runtime.
"""

from __future__ import annotations

import struct

#: ``google.protobuf.Value`` fields, as tag bytes.
NULL_VALUE = b"\x08\x00"
NUMBER_VALUE = b"\x11"
STRING_VALUE = b"\x1a"
TRUE_VALUE = b"\x20\x01"
FALSE_VALUE = b"\x20\x00"
STRUCT_VALUE = b"\x2a"

_double = struct.Struct("<d").pack
_SMALL = [bytes((n,)) for n in range(128)] + [bytes((n & 0x7F | 0x80, n >> 7)) for n in range(128, 16384)]


def varint(number: int) -> bytes:
    """A non-negative integer as a base-128 varint."""
    if number < 16384:
        return _SMALL[number]
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def tag(number: int) -> bytes:
    """The key of a length-delimited field (wire type 2)."""
    return varint(number << 3 | 2)


def field(key: bytes, payload: bytes) -> bytes:
    """A length-delimited field: ``key`` (from ``tag``), the length, then ``payload``."""
    return key + varint(len(payload)) + payload


def string_value(text: str) -> bytes:
    """A ``Value`` holding ``text``, which must be valid UTF-8."""
    return field(STRING_VALUE, text.encode())


def number_value(number: float) -> bytes:
    """A ``Value`` holding a double."""
    return NUMBER_VALUE + _double(number)


_STRUCT_ENTRY = tag(1)
_ENTRY_KEY = tag(1)
_ENTRY_VALUE = tag(2)


def struct_key(key: str) -> bytes:
    """The key part of a ``Struct.fields`` item, for ``struct_entry``; ``key`` must be valid UTF-8."""
    return field(_ENTRY_KEY, key.encode()) + _ENTRY_VALUE


def struct_entry(key: bytes, value: bytes) -> bytes:
    """One ``Struct.fields`` item: ``key`` (from ``struct_key``) and the serialised ``Value``."""
    size = len(value)
    length = _SMALL[size] if size < 16384 else varint(size)
    return _STRUCT_ENTRY + varint(len(key) + len(length) + size) + key + length + value


def struct_entry_of_struct(key: bytes, struct: bytes) -> bytes:
    """``struct_entry(key, field(STRUCT_VALUE, struct))`` in one call: an item whose value is a serialised
    ``Struct``."""
    size = len(struct)
    length = _SMALL[size] if size < 16384 else varint(size)
    value_size = 1 + len(length) + size
    value_length = _SMALL[value_size] if value_size < 16384 else varint(value_size)
    total = len(key) + len(value_length) + value_size
    return b"".join((_STRUCT_ENTRY, _SMALL[total] if total < 16384 else varint(total), key, value_length,
                     STRUCT_VALUE, length, struct))

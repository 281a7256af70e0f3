"""The hand-joined wire format parses back, with protobuf's own parser, to what was meant."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct, Value
from hypothesis import given
from hypothesis import strategies as st

from looker_audit_export import protowire

scalars = st.one_of(st.none(), st.booleans(), st.text(), st.floats(allow_nan=False, allow_infinity=False))


def value_bytes(value: Any) -> bytes:
    if value is None:
        return protowire.NULL_VALUE
    if isinstance(value, bool):
        return protowire.TRUE_VALUE if value else protowire.FALSE_VALUE
    if isinstance(value, str):
        return protowire.string_value(value)
    return protowire.number_value(value)


@given(st.dictionaries(st.text(), scalars, max_size=8))
def test_joined_struct_items_parse_to_the_same_struct_as_protobuf_builds(values: dict[str, Any]) -> None:
    joined = b"".join(protowire.struct_entry(protowire.struct_key(key), value_bytes(value))
                      for key, value in values.items())
    expected = Struct()
    expected.update(values)
    assert Struct.FromString(joined) == expected
    assert json_format.MessageToDict(Struct.FromString(joined)) == json_format.MessageToDict(expected)


@pytest.mark.parametrize("length", [0, 1, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 3_000_000])
def test_lengths_of_every_varint_size_parse(length: int) -> None:
    text = "é" * (length // 2) + "x" * (length % 2)
    assert Value.FromString(protowire.string_value(text)).string_value == text
    assert protowire.varint(length) == Value(string_value=text).SerializeToString()[1:-length or None]


def test_an_item_holding_a_struct_parses_to_the_nested_struct() -> None:
    inner = protowire.struct_entry(protowire.struct_key("id"), protowire.number_value(7))
    outer = protowire.struct_entry(protowire.struct_key("looker"), protowire.field(protowire.STRUCT_VALUE, inner))
    assert json_format.MessageToDict(Struct.FromString(outer)) == {"looker": {"id": 7.0}}


@pytest.mark.parametrize("length", [0, 1, 124, 125, 126, 127, 128, 16378, 16379, 16380, 16381, 16383, 16384, 2**21])
def test_an_item_holding_a_struct_in_one_call_is_the_item_of_the_nested_struct(length: int) -> None:
    inner = protowire.struct_entry(protowire.struct_key("sql"), protowire.string_value("q" * length)) if length else b""
    key = protowire.struct_key("attributes")
    joined = protowire.struct_entry_of_struct(key, inner)
    assert joined == protowire.struct_entry(key, protowire.field(protowire.STRUCT_VALUE, inner))
    expected = Struct()
    expected.get_or_create_struct("attributes").update({"sql": "q" * length} if length else {})
    assert Struct.FromString(joined) == expected

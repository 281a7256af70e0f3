"""Looker values as protobuf ``Struct`` bytes: the conversions, and the caches of the parts rows share.

Pure and free of I/O. Knows the wire format (``protowire``) and what a Looker value means (``values``);
knows nothing of log entries, streams or the export.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from google.protobuf.struct_pb2 import Struct, Value

from .. import protowire
from ..values import clean_text, whole_number

#: Free text outside ``response`` (labels, names, status) is capped; ``response`` keeps it whole.
MAX_FIELD_CHARS = 1024

MAX_TOKEN_CHARS = 128

_TOKEN = re.compile(r"[^a-z0-9_]+")


def json_value(value: Any) -> Any:
    """A value a ``Struct`` can hold, with strings cleaned."""
    kind = type(value)
    if kind is str:
        return clean_text(value)
    if value is None or kind is bool:
        return value
    if kind is int:
        return str(value) if abs(value) >= 2**53 else value
    if kind is float:
        return value if math.isfinite(value) else None  # NaN and infinity are not JSON
    if isinstance(value, bool | int | float):  # subclasses of the JSON types
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**53:
            return str(value)
        return value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean_text(str(k)): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return clean_text(str(value))


def set_value(target: Any, value: Any) -> None:
    """``Struct.update``'s conversion of one value (from ``json_value``), without its pure-Python layer."""
    kind = type(value)
    if kind is str:
        target.string_value = value
    elif value is None:
        target.null_value = 0
    elif kind is bool:
        target.bool_value = value
    elif kind is int or kind is float:
        target.number_value = value
    elif kind is dict:
        set_struct(target.struct_value, value)
        if not value:
            target.struct_value.Clear()  # an empty struct is still set
    elif kind is list:
        values = target.list_value.values
        if not value:
            target.list_value.Clear()  # an empty list is still set
        for item in value:
            set_value(values.add(), item)
    else:  # a subclass of a JSON type: let protobuf convert it as Struct.update does
        wrapper = Struct()
        wrapper.update({"v": value})
        target.CopyFrom(wrapper.fields["v"])


def value_bytes(value: Any) -> bytes:
    """The serialised ``Value`` that ``set_value(target, json_value(value))`` sets, common types first."""
    kind = type(value)
    if kind is str:
        return protowire.string_value(clean_text(value))
    if value is None:
        return protowire.NULL_VALUE
    if (kind is int and -2**53 < value < 2**53) or (kind is float and math.isfinite(value)):
        return protowire.number_value(value)
    if kind is bool:
        return protowire.TRUE_VALUE if value else protowire.FALSE_VALUE
    target = Value()
    set_value(target, json_value(value))
    return target.SerializeToString()


#: Serialised ``Struct`` items by key and value: most of a row's fields repeat from row to row.
_ITEM_CACHE: dict[tuple[str, type, Any], bytes] = {}

_ITEM_CACHE_SIZE = 8192

_CACHED_TYPES = (str, int, type(None), bool)  # not float: 0.0 and -0.0 are equal keys


def struct_bytes(values: Mapping[Any, Any]) -> bytes:
    """A serialised ``Struct`` of ``values``, keys as strings and values converted as ``value_bytes`` does."""
    cached = _ITEM_CACHE.get
    try:  # the cache first, without a call per item
        return b"".join([cached((key, type(value), value)) or _struct_item(str(key), value)
                         for key, value in values.items()])
    except TypeError:  # an unhashable value (a JSON list or object)
        return b"".join([_struct_item(str(key), value) for key, value in values.items()])


def _struct_item(key: str, value: Any) -> bytes:
    """One serialised ``Struct`` field, ``key`` cleaned and ``value`` converted as ``value_bytes`` does."""
    found = protowire.struct_entry(struct_key(key), value_bytes(exact_id(value) if is_id(key) else value))
    kind = type(value)
    if kind in _CACHED_TYPES:
        if len(_ITEM_CACHE) >= _ITEM_CACHE_SIZE:
            _ITEM_CACHE.clear()
        _ITEM_CACHE[key, kind, value] = found
    return found


@lru_cache(maxsize=1024)
def struct_key(key: str) -> bytes:
    return protowire.struct_key(clean_text(key))


def is_id(name: str) -> bool:
    """Whether a field or attribute ``name`` holds a Looker id (``id``, ``user_id``, ...)."""
    return name == "id" or name.endswith("_id")


def exact_id(value: Any) -> Any:
    """An id that is a whole number as its decimal string, exact at any size (a ``Struct`` number is a double);
    anything else (a string id, a fraction, a list of ids) as it is, a list item by item."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = whole_number(value)
        return value if number is None else str(number)
    if isinstance(value, list | tuple):
        return [exact_id(item) for item in value]
    return value


def _split(key: str) -> tuple[str, str] | None:
    """``view.field`` as ``(view, field)``; None for a name that does not split (no dot, or an empty part)."""
    view, _, field = key.partition(".")
    return (view, field) if view and field else None


def nest_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    """Looker's ``view.field`` row as ``{view: {field: value}}``, ids exact (see ``exact_id``), values for a
    ``Struct`` (``json_value``). A name that does not split stays at the top as sent; so do the ``view.field``
    names of a view that is also a name of its own, so that nothing is lost."""
    plain = {clean_text(str(key)) for key in row if _split(clean_text(str(key))) is None}
    nested: dict[str, Any] = {}
    for raw_key, value in row.items():
        key = clean_text(str(raw_key))
        parts = _split(key)
        if parts is None or parts[0] in plain:
            nested[key] = json_value(exact_id(value) if is_id(key.rpartition(".")[2]) else value)
        else:
            view, field = parts
            nested.setdefault(view, {})[field] = json_value(exact_id(value) if is_id(field) else value)
    return nested


#: How the rows with these names nest (see ``_looker_plan``); rows of a query share their names.
_LOOKER_PLANS: dict[tuple[Any, ...], tuple[tuple[bytes, int, int], ...] | None] = {}

#: The serialised ``field`` items of the ``looker`` struct, by raw ``view.field`` name and value.
_LOOKER_ITEMS: dict[tuple[str, type, Any], bytes] = {}


def looker_struct(row: Mapping[Any, Any]) -> bytes:
    """The serialised ``looker`` ``Struct`` of a row, as ``nest_row`` builds it, common rows from cached parts."""
    names = tuple(row)
    try:
        plan = _LOOKER_PLANS[names]
    except KeyError:
        plan = _looker_plan(names)
    if plan is None:
        return struct_bytes(nest_row(row))
    cached = _LOOKER_ITEMS.get
    try:  # the cache first, without a call per item
        items = [cached((key, type(value), value)) or _looker_item(key, value) for key, value in row.items()]
    except TypeError:  # an unhashable value (a JSON list or object)
        items = [_looker_item(key, value) for key, value in row.items()]
    nested = protowire.struct_entry_of_struct
    return b"".join([nested(view, b"".join(items[start:end])) for view, start, end in plan])


def _looker_plan(names: tuple[Any, ...]) -> tuple[tuple[bytes, int, int], ...] | None:
    """Each view's key and the slice of the row's items it holds, when every name splits and each view's
    names are together (as Looker sends them); else None, and the row takes ``nest_row``."""
    plan: list[tuple[bytes, int, int]] = []
    views: list[str] = []
    for index, name in enumerate(names):
        parts = _split(name) if type(name) is str else None
        if parts is None or (parts[0] in views and parts[0] != views[-1]):
            plan = []
            break
        if not views or parts[0] != views[-1]:
            views.append(parts[0])
            plan.append((struct_key(parts[0]), index, index))
        plan[-1] = (plan[-1][0], plan[-1][1], index + 1)
    found = tuple(plan) if plan or not names else None
    if len(_LOOKER_PLANS) >= 256:
        _LOOKER_PLANS.clear()
    _LOOKER_PLANS[names] = found
    return found


def _looker_item(key: str, value: Any) -> bytes:
    """One ``field`` item of a ``view.field`` name that splits, the id exact."""
    field, is_id, unique = _field_of(key)
    kind = type(value)
    exact = (str(value) if kind is int else exact_id(value)) if is_id else value
    found = protowire.struct_entry(field, value_bytes(exact))
    if kind in _CACHED_TYPES and not unique:
        if len(_LOOKER_ITEMS) >= _ITEM_CACHE_SIZE:
            _LOOKER_ITEMS.clear()
        _LOOKER_ITEMS[key, kind, value] = found
    return found


@lru_cache(maxsize=1024)
def _field_of(key: str) -> tuple[bytes, bool, bool]:
    """The ``struct_key`` of the field part of a ``view.field`` name, whether it holds an id, and whether
    that is the view's own id (``event.id``), new in every row: not worth a place in the cache."""
    field = key.partition(".")[2]
    return struct_key(field), is_id(field), field == "id"


def set_struct(struct: Any, values: Mapping[str, Any]) -> None:
    fields = struct.fields
    for key, value in values.items():
        set_value(fields[key], value)


def token(value: Any, default: str) -> str:
    text = _TOKEN.sub("_", str(value)[:MAX_TOKEN_CHARS].lower()).strip("_") if value not in (None, "") else ""
    return text or default


def display_name(value: Any) -> Any:
    """A user's name for the principal: capped like other free text outside ``response`` (which keeps it
    whole under ``looker.user.name``); None when there is none."""
    return None if value is None else capped(value) if isinstance(value, str) else json_value(value)


def capped(value: Any) -> str:
    if type(value) is str and len(value) <= MAX_FIELD_CHARS and value.isascii():
        return value
    return clean_text(str(value))[:MAX_FIELD_CHARS]

"""Typed config sections: dataclasses validated from raw YAML dicts.

``from_dict(Cls, data, "model")`` checks every key against the dataclass fields (unknown keys
are errors naming the full key path and the allowed keys), converts and checks types
(int, float, str, bool, Optional, Literal, list/tuple/dict of those, nested dataclasses) and
fills defaults. Every float must be finite (``.inf``, ``1e999`` and ``.nan`` are errors naming
the key). Errors read ``config key 'model.head.anchors': expected a list, got str``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from sckd.errors import SckdError

T = typing.TypeVar("T")


_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _err(path: str, problem: str) -> SckdError:
    return SckdError(f"config key '{path}': {problem}")


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _err(path, "must not be null")
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, path)
            except SckdError as e:
                errors.append(e)
        raise errors[0] if len(errors) == 1 else _err(path, f"{value!r} matches none of {tp}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise _err(path, f"{value!r} is not one of {list(choices)}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _err(path, f"expected a list, got {type(value).__name__}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise _err(path, f"expected {len(args)} values, got {len(value)}")
            return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        inner = args[0] if args else Any
        conv = [_convert(inner, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(conv) if origin is tuple else conv
    if origin is dict:
        if not isinstance(value, dict):
            raise _err(path, f"expected a mapping, got {type(value).__name__}")
        kt, vt = get_args(tp) or (Any, Any)
        return {_convert(kt, k, path): _convert(vt, v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise _err(path, f"expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _err(path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads "3e-5" (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _err(path, f"expected a number, got {value!r}")
        if not math.isfinite(value):  # .inf, 1e999, .nan: every check like 'lr > 0' lets them by
            raise _err(path, f"must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _err(path, f"expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _err(path, f"expected {getattr(tp, '__name__', tp)}, got {type(value).__name__}")


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Validate ``data`` (a raw mapping) into dataclass ``cls``; ``path`` prefixes error keys."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _err(path or cls.__name__, f"expected a section (mapping), got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise _err(key, f"unknown key (allowed here: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _err(sub, "missing (required)")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if callable(check):
        check(path)
    return obj


def to_dict(obj: Any, drop_defaults: bool = False) -> Any:
    """A dataclass config back to plain YAML-able data (tuples become lists). ``drop_defaults``:
    leave out every field still at its default (what distinguishes this config)."""
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if drop_defaults and _is_default(f, value):
                continue
            out[f.name] = to_dict(value, drop_defaults)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_dict(v, drop_defaults) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v, drop_defaults) for k, v in obj.items()}
    return obj


def _is_default(f: dataclasses.Field, value: Any) -> bool:
    if f.default is not dataclasses.MISSING:
        return value == f.default
    if f.default_factory is not dataclasses.MISSING:
        return value == f.default_factory()
    return False

"""Secrets: what a settings model says is secret, and keeping secret values out of sight.

A value is secret if its type is (``SecretStr``, ``SecretBytes``, ``Secret[...]``)
or if the model's annotation at its location says so; a secret is shown as
:data:`MASK` wherever settings are listed, explained or reported as a problem.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Secret, SecretBytes, SecretStr
from pydantic.fields import FieldInfo

from acp_plugins.config.trees import Loc

__all__ = [
    "MASK",
    "children",
    "holds_secret",
    "is_model",
    "is_secret",
    "mask_secrets",
    "model_field",
    "secret_texts",
    "types_at",
]

#: What a secret value is shown as, everywhere.
MASK = "**********"

SECRET_TYPES: tuple[type, ...] = (SecretStr, SecretBytes, Secret)


def alternatives(annotation: Any) -> list[Any]:
    """The types an annotation allows: ``Annotated`` and ``Optional``/unions unpacked."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return alternatives(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [alt for arg in get_args(annotation) for alt in alternatives(arg)]
    return [annotation]


def is_model(annotation: Any) -> bool:
    # on 3.10 ``list[int]`` passes for a type, but issubclass() refuses it
    return (
        isinstance(annotation, type)
        and not isinstance(annotation, types.GenericAlias)
        and issubclass(annotation, BaseModel)
    )


def is_secret(annotations: Sequence[Any]) -> bool:
    for annotation in annotations:
        for alt in alternatives(annotation):
            cls = get_origin(alt) or alt
            if isinstance(cls, type) and issubclass(cls, SECRET_TYPES):
                return True
    return False


def children(annotations: Sequence[Any], part: str | int) -> list[Any]:
    """The possible types of item ``part`` of a value typed by any of ``annotations``."""
    found = []
    for annotation in annotations:
        for alt in alternatives(annotation):
            if is_model(alt):
                info = model_field(alt, part)
                if info is not None:
                    found.append(info.annotation)
                continue
            origin, args = get_origin(alt), get_args(alt)
            if not isinstance(origin, type) or not args:
                continue
            if issubclass(origin, tuple):
                if len(args) == 2 and args[1] is Ellipsis:
                    found.append(args[0])
                elif isinstance(part, int) and part < len(args):
                    found.append(args[part])
            elif issubclass(origin, Mapping):
                found.append(args[-1])
            elif issubclass(origin, (Sequence, AbstractSet)):
                found.append(args[0])
    return found


def model_field(model: type[BaseModel], key: str | int) -> FieldInfo | None:
    if not isinstance(key, str):
        return None
    for name, info in model.model_fields.items():
        if key.lower() == name.lower() or (info.alias and key.lower() == info.alias.lower()):
            return info
    return None


def types_at(annotations: Sequence[Any], loc: Loc) -> list[Any]:
    for part in loc:
        annotations = children(annotations, part)
    return list(annotations)


def mask_secrets(annotations: Sequence[Any], value: Any) -> Any:
    """``value`` with every secret in it (by type, or by what the model says) masked."""
    if value is None:
        return None
    if isinstance(value, SECRET_TYPES) or is_secret(annotations):
        return MASK
    if isinstance(value, Mapping):
        return {key: mask_secrets(children(annotations, key), item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [
            mask_secrets(children(annotations, index), item) for index, item in enumerate(value)
        ]
    if holds_secret(annotations):  # e.g. the JSON text of a model with a secret field
        return MASK
    return value


def holds_secret(annotations: Sequence[Any], depth: int = 0) -> bool:
    """Whether a value of these types may have a secret inside."""
    if is_secret(annotations):
        return True
    if depth > 8:  # a model that nests itself
        return False
    for annotation in annotations:
        for alt in alternatives(annotation):
            if is_model(alt):
                inner = [info.annotation for info in alt.model_fields.values()]
            else:
                inner = [arg for arg in get_args(alt) if arg is not Ellipsis]
            if inner and holds_secret(inner, depth + 1):
                return True
    return False


def secret_texts(annotations: Sequence[Any], value: Any) -> list[str]:
    """The plain texts of the secrets in raw input ``value``, to keep them out of messages."""
    if value is None:
        return []
    if isinstance(value, (SecretStr, SecretBytes)):
        value = value.get_secret_value()
    if is_secret(annotations):
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return [str(value)] if not isinstance(value, (Mapping, list, tuple)) else []
    if isinstance(value, Mapping):
        return [
            text
            for key, item in value.items()
            for text in secret_texts(children(annotations, key), item)
        ]
    if isinstance(value, (list, tuple)):
        return [
            text
            for index, item in enumerate(value)
            for text in secret_texts(children(annotations, index), item)
        ]
    return []

"""The taxonomy schemas, read from the instructlab-schema package's own files, and a validator
per (version, kind) that resolves `$ref`s only inside that version's folder."""

import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from instructlab.schema import schema_base, schema_versions
from jsonschema import ValidationError
from jsonschema.validators import Draft202012Validator, extend, validator_for
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT202012

from instruct_lab_bot.core.validation.limits import TAXONOMY_FOLDERS


@functools.cache
def highest_version() -> int:
    return int(schema_versions()[-1].name[1:])


@functools.cache
def load_schema(version: int, kind: str) -> dict[str, Any] | None:
    folder = schema_base().joinpath(f"v{version}")
    try:
        loaded = json.loads(folder.joinpath(f"{kind}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _retrieve(version: int, uri: str) -> Resource[Any]:
    ref = PurePosixPath(uri)
    name = ref.name
    if not name.endswith(".json") or ref.is_absolute() or ".." in ref.parts:
        raise NoSuchResource(ref=uri)  # type: ignore[call-arg]
    target = schema_base().joinpath(f"v{version}", *[p for p in ref.parts if p != "."])
    try:
        contents = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise NoSuchResource(ref=uri) from error  # type: ignore[call-arg]
    return Resource.from_contents(contents, default_specification=DRAFT202012)


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[Any]:
    """`uniqueItems` in linear time (jsonschema's own compares every pair of objects)."""
    if unique and validator.is_type(instance, "array") and first_duplicate(instance)[1] is not None:
        yield ValidationError(f"{instance!r} has non-unique elements")


@functools.cache
def validator(version: int, kind: str) -> Any:
    schema = load_schema(version, kind)
    base = validator_for(schema, default=Draft202012Validator)
    cls = extend(base, {"uniqueItems": _unique_items})
    registry: Registry[Any] = Registry(retrieve=functools.partial(_retrieve, version))  # type: ignore[call-arg]
    return cls(schema, registry=registry)


def schema_kind(path: str, data: Mapping[Any, Any]) -> str:
    """The parser's rule: the last taxonomy folder in the path, else guess from the keys."""
    for part in reversed(PurePosixPath(path).parts):
        if part in TAXONOMY_FOLDERS:
            return part
    return "knowledge" if "document" in data else "compositional_skills"


def allowed_keys(schema: Any, version: int) -> set[str]:
    """Property names a (sub)schema evaluates, following a `$ref` to version.json."""
    allowed: set[str] = set()
    if not isinstance(schema, Mapping):
        return allowed
    allowed |= {str(k) for k in schema.get("properties", {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        try:
            contents = _retrieve(version, ref).contents
        except NoSuchResource:
            return allowed
        if isinstance(contents, Mapping):
            allowed |= {str(k) for k in contents.get("properties", {})}
    return allowed


def property_description(schema: Any, key: str) -> str:
    if not isinstance(schema, Mapping):
        return ""
    prop = schema.get("properties", {}).get(key)
    return str(prop.get("description", "")) if isinstance(prop, Mapping) else ""


def _identity(value: Any) -> Any:
    """A hashable stand-in with jsonschema's equality (True is not 1; 1 is 1.0)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("array", tuple(_identity(v) for v in value))
    if isinstance(value, Mapping):
        return ("object", frozenset((_identity(k), _identity(v)) for k, v in value.items()))
    if value is None:
        return ("null",)
    return ("other", type(value).__name__, repr(value))


def first_duplicate(items: Sequence[Any]) -> tuple[int | None, int | None]:
    """Indexes of the first item that repeats an earlier one, and of that repeat."""
    seen: dict[Any, int] = {}
    for index, item in enumerate(items):
        identity = _identity(item)
        if identity in seen:
            return seen[identity], index
        seen[identity] = index
    return None, None

"""Validate HTTP requests and responses against GitHub's own OpenAPI 3.0 description.

The GitHub emulator runs every request it receives through `OpenAPISpec.validate_request`, so a
test fails when the bot sends something real GitHub would reject (a wrong enum, an unknown field,
a string where an integer belongs, an endpoint that does not exist), not only when the emulator's
hand-written logic notices. `validate_response` proves the emulator's own bodies are shaped like
GitHub's.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from jsonschema import _keywords
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.validators import extend
from openapi_schema_validator import (
    OAS30ReadValidator,
    OAS30WriteValidator,
    oas30_format_checker,
)
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_URI = "urn:github-rest-api"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_MAX_REASON = 300
_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def _nullable_enum(
    validator: Any, enums: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterable[ValidationError]:
    """`nullable: true` admits null even when `enum` does not list it.

    GitHub's description relies on this reading (e.g. an in-progress check run has
    ``"conclusion": null`` under a nullable enum), so a strict reading would reject real bodies.
    """
    if instance is None and schema.get("nullable") is True:
        return
    yield from _keywords.enum(validator, enums, instance, schema)


_ReadValidator: Any = extend(OAS30ReadValidator, validators={"enum": _nullable_enum})
_WriteValidator: Any = extend(OAS30WriteValidator, validators={"enum": _nullable_enum})


class SpecViolation(Exception):
    """A request or response that GitHub's description does not allow."""

    def __init__(self, reason: str, *, operation: str = "", where: str = "") -> None:
        self.operation = operation
        self.where = where
        self.reason = reason
        parts = [p for p in (operation, where) if p]
        super().__init__(": ".join([*parts, reason]))


@dataclass(frozen=True)
class Parameter:
    """One path, query or header parameter of an operation."""

    name: str
    location: str  # "path" | "query" | "header" | "cookie"
    required: bool
    schema: Mapping[str, Any]
    schema_pointer: str  # JSON pointer to `schema` inside the spec


@dataclass(frozen=True)
class Operation:
    """One operation of the description, e.g. ``PATCH /repos/{owner}/{repo}/check-runs/{id}``."""

    method: str  # upper case
    template: str
    operation_id: str
    pointer: str  # JSON pointer to the operation object inside the spec
    parameters: tuple[Parameter, ...]
    body_pointer: str | None  # JSON pointer to the application/json request schema
    body_required: bool
    responses: Mapping[str, Any] = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"

    def params(self, location: str) -> dict[str, Parameter]:
        return {p.name: p for p in self.parameters if p.location == location}

    def path_params(self, path: str) -> dict[str, str]:
        """The decoded values of the template's ``{name}`` segments in a raw request path."""
        segments = _split(path)
        out: dict[str, str] = {}
        template_segments = self.template.strip("/").split("/")
        for i, tseg in enumerate(template_segments):
            if tseg.startswith("{") and tseg.endswith("}"):
                last = i == len(template_segments) - 1
                value = "/".join(segments[i:]) if last and _is_greedy(tseg) else segments[i]
                out[tseg[1:-1]] = value
        return out


def _split(path: str) -> list[str]:
    """Raw path → decoded segments (``%2F`` stays inside its segment)."""
    path = path.split("?", 1)[0]
    return [unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []


def _is_greedy(segment: str) -> bool:
    # GitHub's contents API takes `{path}` with literal slashes in it (a/b/c.yaml), and the
    # git refs API a `{ref}` like heads/main (the description marks it x-multi-segment).
    return segment in ("{path}", "{ref}")


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


@dataclass
class _Node:
    literal: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    greedy: _Node | None = None
    operations: dict[str, Operation] = field(default_factory=dict)
    template: str | None = None


class OpenAPISpec:
    """A parsed description with a path router and lazily built, cached schema validators."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self._registry: Registry[Any] = Registry().with_resource(
            SPEC_URI, Resource.from_contents(document, default_specification=DRAFT4)
        )
        self._root = _Node()
        self._validators: dict[tuple[str, str], Any] = {}
        for template, item in document.get("paths", {}).items():
            self._add_path(template, item)

    @classmethod
    def load(cls, path: Path) -> OpenAPISpec:
        """Parse once per file version: the full description is 13 MB."""
        resolved = path.resolve()
        stat = resolved.stat()
        return _load_cached(resolved, stat.st_mtime_ns, stat.st_size)

    # -- routing -------------------------------------------------------------------------

    def _add_path(self, template: str, item: Mapping[str, Any]) -> None:
        node = self._root
        segments = template.strip("/").split("/") if template.strip("/") else []
        for i, seg in enumerate(segments):
            if seg.startswith("{") and seg.endswith("}"):
                if i == len(segments) - 1 and _is_greedy(seg):
                    node.greedy = node.greedy or _Node()
                    node = node.greedy
                else:
                    node.param = node.param or _Node()
                    node = node.param
            else:
                node = node.literal.setdefault(seg, _Node())
        if node.template is not None:
            return  # two templates differing only in parameter names: keep the first
        node.template = template
        item_pointer = f"/paths/{_escape(template)}"
        shared = list(item.get("parameters", []))
        for method in HTTP_METHODS:
            if method in item:
                node.operations[method.upper()] = self._operation(
                    method, template, item[method], f"{item_pointer}/{method}", shared
                )

    def _operation(
        self,
        method: str,
        template: str,
        op: Mapping[str, Any],
        pointer: str,
        shared: list[Any],
    ) -> Operation:
        params: dict[tuple[str, str], Parameter] = {}
        for owner_pointer, raw in [
            *((f"{pointer[: pointer.rfind('/')]}/parameters/{i}", p) for i, p in enumerate(shared)),
            *((f"{pointer}/parameters/{i}", p) for i, p in enumerate(op.get("parameters", []))),
        ]:
            param_pointer, param = self._deref(owner_pointer, raw)
            params[(param["in"], param["name"])] = Parameter(
                name=param["name"],
                location=param["in"],
                required=bool(param.get("required", False)),
                schema=self._deref(f"{param_pointer}/schema", param.get("schema", {}))[1],
                schema_pointer=f"{param_pointer}/schema",
            )
        body_pointer: str | None = None
        body_required = False
        if "requestBody" in op:
            rb_pointer, rb = self._deref(f"{pointer}/requestBody", op["requestBody"])
            body_required = bool(rb.get("required", False))
            if "schema" in rb.get("content", {}).get("application/json", {}):
                body_pointer = f"{rb_pointer}/content/application~1json/schema"
        return Operation(
            method=method.upper(),
            template=template,
            operation_id=str(op.get("operationId", "")),
            pointer=pointer,
            parameters=tuple(params.values()),
            body_pointer=body_pointer,
            body_required=body_required,
            responses=op.get("responses", {}),
        )

    def _deref(self, pointer: str, value: Any) -> tuple[str, Any]:
        """Follow local ``$ref``s: returns the pointer and value of the target."""
        while isinstance(value, Mapping) and "$ref" in value:
            ref = str(value["$ref"])
            if not ref.startswith("#/"):
                raise SpecViolation(f"unsupported $ref {ref!r} at {pointer}")
            pointer = ref[1:]
            value = self.resolve_pointer(pointer)
        return pointer, value

    def resolve_pointer(self, pointer: str) -> Any:
        node: Any = self.document
        for token in pointer.lstrip("/").split("/"):
            key = token.replace("~1", "/").replace("~0", "~")
            node = node[int(key)] if isinstance(node, list) else node[key]
        return node

    def match(self, method: str, path: str) -> Operation:
        """The operation serving `method` on a raw request path (the most literal template wins)."""
        node = self._find(self._root, _split(path))
        if node is None or node.template is None:
            raise SpecViolation(f"no such endpoint: {method.upper()} {path.split('?', 1)[0]}")
        op = node.operations.get(method.upper())
        if op is None:
            allowed = ", ".join(sorted(node.operations)) or "none"
            raise SpecViolation(
                f"method {method.upper()} not allowed on {node.template} (allowed: {allowed})"
            )
        return op

    def _find(self, node: _Node, segments: list[str]) -> _Node | None:
        if not segments:
            return node if node.template is not None else None
        head, rest = segments[0], segments[1:]
        candidates = [node.literal.get(head)]
        if head:
            candidates.append(node.param)
        for child in candidates:
            if child is not None and (found := self._find(child, rest)) is not None:
                return found
        if node.greedy is not None and node.greedy.template is not None and all(segments):
            return node.greedy
        return None

    def operations(self) -> Iterable[Operation]:
        stack = [self._root]
        while stack:
            node = stack.pop()
            yield from node.operations.values()
            stack.extend(node.literal.values())
            stack.extend(n for n in (node.param, node.greedy) if n is not None)

    # -- examples ------------------------------------------------------------------------

    def example(self, name: str) -> Any:
        """A deep copy of ``components/examples/<name>/value``."""
        return copy.deepcopy(self.document["components"]["examples"][name]["value"])

    def schema(self, name: str) -> Mapping[str, Any]:
        schema: Mapping[str, Any] = self.document["components"]["schemas"][name]
        return schema

    # -- validation ----------------------------------------------------------------------

    def _validator(self, pointer: str, mode: str) -> Any:
        key = (pointer, mode)
        validator = self._validators.get(key)
        if validator is None:
            cls = _WriteValidator if mode == "write" else _ReadValidator
            validator = cls(
                {"$ref": f"{SPEC_URI}#{pointer}"},
                registry=self._registry,
                format_checker=oas30_format_checker,
            )
            self._validators[key] = validator
        return validator

    def _check(
        self, operation: Operation, pointer: str, mode: str, instance: Any, where: str
    ) -> None:
        errors = list(self._validator(pointer, mode).iter_errors(instance))
        if not errors:
            return
        error: ValidationError = best_match(errors)
        location = where + error.json_path[1:] if where else error.json_path
        reason = error.message
        if reason == "None for not nullable":
            reason = "null is not allowed here (the schema is not nullable)"
        if len(reason) > _MAX_REASON:
            reason = reason[:_MAX_REASON] + "…"
        if len(errors) > 1:
            reason += f" (and {len(errors) - 1} more error(s))"
        raise SpecViolation(reason, operation=operation.name, where=location)

    def validate_request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Operation:
        """Raise `SpecViolation` unless GitHub's description allows this request.

        `path` is the raw (percent-encoded) request path; a query string on it is ignored in
        favour of `query`.
        """
        operation = self.match(method, path)
        for name, value in operation.path_params(path).items():
            param = operation.params("path").get(name)
            if param is not None:
                self._check_param(operation, param, value)
        query_params = operation.params("query")
        for name, value in (query or {}).items():
            param = query_params.get(name)
            if param is None:
                raise SpecViolation(
                    f"unknown query parameter (allowed: {', '.join(sorted(query_params))})",
                    operation=operation.name,
                    where=f"query.{name}",
                )
            self._check_param(operation, param, value)
        for param in query_params.values():
            if param.required and param.name not in (query or {}):
                raise SpecViolation(
                    "required query parameter missing",
                    operation=operation.name,
                    where=f"query.{param.name}",
                )
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        for param in operation.params("header").values():
            header = lowered.get(param.name.lower())
            if header is not None:
                self._check_param(operation, param, header)
            elif param.required:
                raise SpecViolation(
                    "required header missing", operation=operation.name, where=param.name
                )
        self._check_body(operation, body)
        return operation

    def _check_param(self, operation: Operation, param: Parameter, raw: str) -> None:
        where = f"{param.location}.{param.name}"
        value = _coerce(raw, param.schema)
        if value is None:
            expected = param.schema.get("type", "value")
            raise SpecViolation(
                f"{raw!r} is not a valid {expected}", operation=operation.name, where=where
            )
        self._check(operation, param.schema_pointer, "write", value, where)

    def _check_body(self, operation: Operation, body: bytes | None) -> None:
        if not body:
            if operation.body_required:
                raise SpecViolation(
                    "request body is required", operation=operation.name, where="body"
                )
            return
        if operation.body_pointer is None:
            op = self.resolve_pointer(operation.pointer)
            if "requestBody" in op:
                return  # a non-JSON body (e.g. text/plain): not validated here
            raise SpecViolation(
                "this operation takes no request body", operation=operation.name, where="body"
            )
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise SpecViolation(
                f"body is not valid JSON ({exc})", operation=operation.name, where="body"
            ) from None
        self._check(operation, operation.body_pointer, "write", payload, "body")

    def validate_response(self, operation: Operation, status: int, body: Any) -> None:
        """Raise `SpecViolation` unless `body` (decoded JSON, or None) fits that status."""
        responses = operation.responses
        key = next(
            (k for k in (str(status), f"{status // 100}XX", "default") if k in responses), None
        )
        where = f"response {status}"
        if key is None:
            raise SpecViolation(
                f"status not documented (documented: {', '.join(responses)})",
                operation=operation.name,
                where=where,
            )
        pointer, response = self._deref(
            f"{operation.pointer}/responses/{_escape(key)}", responses[key]
        )
        media = response.get("content", {}).get("application/json")
        if media is None or "schema" not in media:
            if body not in (None, b"", ""):
                raise SpecViolation(
                    "a body was sent where none is documented",
                    operation=operation.name,
                    where=where,
                )
            return
        self._check(operation, f"{pointer}/content/application~1json/schema", "read", body, where)


def _coerce(raw: str, schema: Mapping[str, Any]) -> Any:
    """A query/path string → the typed value the schema talks about (None: not convertible)."""
    kind = schema.get("type")
    if kind == "integer":
        return int(raw) if _INTEGER.fullmatch(raw) else None
    if kind == "number":
        return float(raw) if _NUMBER.fullmatch(raw) else None
    if kind == "boolean":
        return {"true": True, "false": False}.get(raw)
    if kind == "array":
        items = schema.get("items", {})
        values = [_coerce(v, items) for v in raw.split(",")] if raw else []
        return None if any(v is None for v in values) else values
    return raw


@functools.lru_cache(maxsize=4)
def _load_cached(path: Path, mtime_ns: int, size: int) -> OpenAPISpec:
    """Memoised by file identity (path, mtime, size): one parse per test session."""
    del mtime_ns, size  # part of the cache key only
    with path.open(encoding="utf-8") as f:
        return OpenAPISpec(json.load(f))

"""The JSON-schema step: every schema error as a problem on the line of the offending key or
value, with the taxonomy CI's own message below it (the wording is in messages)."""

import difflib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from jsonschema import ValidationError
from yaml.nodes import Node, SequenceNode

from instruct_lab_bot.core.messages import schema_errors as text
from instruct_lab_bot.core.messages.validation import (
    TITLE_UNKNOWN_VERSION,
    TITLE_UNSUPPORTED,
    msg_deprecated,
    msg_unknown_version,
    shorten,
)
from instruct_lab_bot.core.validation.limits import CI_MESSAGE_CHARS
from instruct_lab_bot.core.validation.problem import Problem, Reporter
from instruct_lab_bot.core.validation.schema import (
    allowed_keys,
    first_duplicate,
    highest_version,
    load_schema,
    property_description,
    schema_kind,
    validator,
)
from instruct_lab_bot.core.validation.yaml_reader import Found, locate


def schema_problems(
    reporter: Reporter, root: Node, data: Mapping[Any, Any], version: int
) -> Iterator[Problem]:
    """CI's schema check against `version`: an unknown or deprecated version is one failure."""
    kind = schema_kind(reporter.path, data)
    schema = load_schema(version, kind)
    version_line = reporter.node_line(locate(root, ("version",)).key or root)
    if schema is None:
        message = msg_unknown_version(version, highest_version())
        yield reporter.problem(version_line, "failure", TITLE_UNKNOWN_VERSION, message)
        return
    if schema.get("deprecated"):
        message = msg_deprecated(schema.get("description"), kind, version)
        yield reporter.problem(version_line, "failure", TITLE_UNSUPPORTED, message)
        return
    words = _SchemaErrors(reporter, root, data, kind, version)
    for error in validator(version, kind).iter_errors(data):
        yield from words.problems(error)


class _SchemaErrors:
    """Turns one jsonschema error into problems at the right line."""

    def __init__(
        self, reporter: Reporter, root: Node, data: Mapping[Any, Any], kind: str, version: int
    ) -> None:
        self.reporter = reporter
        self.root = root
        self.data = data
        self.kind = kind
        self.version = version

    def problems(self, error: ValidationError) -> Iterator[Problem]:
        at = tuple(error.absolute_path)
        found = locate(self.root, at)
        line = self.reporter.node_line(found.key or found.node or self.root)
        ci = text.msg_ci(_yaml_path(at), _ci_message(error))
        keyword = str(error.validator)
        if keyword == "required":
            yield self._required(error, at, line, ci)
        elif keyword == "unevaluatedProperties":
            yield from self._unexpected(error, at, ci)
        elif keyword == "uniqueItems":
            yield self._duplicate(error.instance, at, found, ci)
        else:
            title, message = self._words(error, at)
            yield self._fail(line, title, message, ci)

    def _words(self, error: ValidationError, at: tuple[Any, ...]) -> tuple[str, str]:
        """(title, message) for an error about one value."""
        keyword = str(error.validator)
        field = at[-1] if at and isinstance(at[-1], str) else None
        value = error.instance
        expected = str(error.validator_value)
        if keyword == "minItems":
            have = len(value) if isinstance(value, list) else 0
            title = text.TITLE_TOO_FEW.get(str(field), text.TITLE_TOO_FEW_OTHER)
            return title, text.msg_too_few(at, have, int(error.validator_value))
        if keyword == "const" and field == "version":
            return text.TITLE_WRONG_VERSION, self._wrong_version(error)
        if keyword == "type" and value is None:
            return text.TITLE_MISSING_VALUE, text.msg_missing_value(at, expected)
        if keyword == "type" and field == "version":
            return text.TITLE_WRONG_TYPE, text.msg_version_not_number(highest_version())
        if keyword == "type":
            return text.TITLE_WRONG_TYPE, text.msg_wrong_type(at, expected, value)
        if keyword == "minLength":
            return text.TITLE_EMPTY_VALUE, text.msg_empty_value(at)
        message = text.msg_schema_other(at, shorten(error.message, CI_MESSAGE_CHARS))
        return text.TITLE_SCHEMA, message

    def _fail(self, line: int, title: str, message: str, ci: str) -> Problem:
        return self.reporter.problem(line, "failure", title, f"{message}\n{ci}")

    def _required(self, error: ValidationError, at: tuple[Any, ...], line: int, ci: str) -> Problem:
        key = _quoted_property(error.message)
        if key == "version":
            message = text.msg_missing_version(highest_version())
            return self._fail(line, text.TITLE_MISSING_VERSION, message, ci)
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        near = _near_miss(key, [k for k in instance if isinstance(k, str)])
        message = text.msg_missing_key(key, at, property_description(error.schema, key), near)
        return self._fail(line, text.title_missing(key), message, ci)

    def _unexpected(
        self, error: ValidationError, at: tuple[Any, ...], ci: str
    ) -> Iterator[Problem]:
        """One problem per unexpected key, on the key's own line (CI gives one for all)."""
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        allowed = allowed_keys(error.schema, self.version)
        for key in instance:
            if key in allowed:
                continue
            found = locate(self.root, (*at, key))
            line = self.reporter.node_line(found.key or found.node or self.root)
            near = _near_miss(str(key), sorted(allowed))
            old = at == () and self.kind == "knowledge" and key == "task_description"
            message = text.msg_unexpected_key(key, at, near, allowed, old_knowledge=old)
            yield self._fail(line, text.title_unexpected(key), message, ci)

    def _duplicate(self, items: Any, at: tuple[Any, ...], found: Found, ci: str) -> Problem:
        """On the line of the repeat, not of the list (CI prints the list's last 200 chars)."""
        first, second = first_duplicate(items if isinstance(items, list) else [])
        nodes = found.node.value if isinstance(found.node, SequenceNode) else []
        node = nodes[second] if second is not None and second < len(nodes) else None
        line = self.reporter.node_line(node or found.key or found.node)
        title = text.TITLE_DUPLICATE.get(str(at[-1]) if at else "", text.TITLE_DUPLICATE_OTHER)
        return self._fail(line, title, text.msg_duplicate(at, first, second), ci)

    def _wrong_version(self, error: ValidationError) -> str:
        have = self.data.get("version")
        old = ""
        if isinstance(have, int) and not isinstance(have, bool) and 1 <= have < self.version:
            old = str((load_schema(have, self.kind) or {}).get("description") or "")
        return text.msg_wrong_version(have, error.validator_value, self.kind, old)


def _ci_message(error: ValidationError) -> str:
    if error.validator == "minItems":
        return f"Value must have at least {error.validator_value} items"
    return str(error.message)[-CI_MESSAGE_CHARS:]


def _yaml_path(at: Sequence[Any]) -> str:
    """The parser's `[...]` path, e.g. `.seed_examples[2].questions_and_answers[0].answer`."""
    out = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in at)
    return out or "."


def _quoted_property(message: str) -> str:
    match = re.match(r"^'(.*)' is a required property$", message, re.DOTALL)
    return match.group(1) if match else message


def _normal_key(key: str) -> str:
    return re.sub(r"[\s.\-]+", "_", key.strip().lower())


def _near_miss(key: str, candidates: Sequence[str]) -> str | None:
    """The candidate a contributor most likely meant by `key` (`created.by` → `created_by`)."""
    others = [c for c in candidates if c != key]
    for candidate in others:
        if _normal_key(candidate) == _normal_key(key):
            return candidate
    close = difflib.get_close_matches(key, others, n=1, cutoff=0.75)
    return close[0] if close else None

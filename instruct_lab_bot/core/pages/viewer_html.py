"""The browser viewer for a job's jsonl and yaml files (pure): one card per record, paged,
with a search box, rendered on the server so the page needs no script and no outside asset.

Every value comes from generated output, so everything is escaped; the page is served with a
CSP that allows no script at all (`VIEWER_CSP`).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

PAGE_SIZE = 20
#: Bytes of a file the viewer reads; the rest is left to the download link.
MAX_VIEW_BYTES = 8 * 1024 * 1024
#: Characters of one value shown in a card.
MAX_VALUE = 20_000
VIEWER_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;background:#f6f8fa;color:#1f2328}"
    "header{display:flex;gap:1em;align-items:baseline;flex-wrap:wrap}"
    "h1{font-size:1.2em;margin:0;word-break:break-all}"
    "form{margin:1em 0}input[type=search]{width:24em;max-width:90%;padding:.3em}"
    ".card{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:.8em 0;"
    "padding:.6em 1em}"
    ".card h2{font-size:.85em;color:#57606a;margin:0 0 .4em}"
    ".field{display:grid;grid-template-columns:11em 1fr;gap:.6em;border-top:1px solid #eee;"
    "padding:.3em 0}.field:first-of-type{border-top:0}"
    ".key{font-weight:600;color:#0550ae;word-break:break-all}"
    ".val{white-space:pre-wrap;word-break:break-word;margin:0;font-family:inherit}"
    ".role-system .key{color:#6e7781}.role-user .key{color:#8250df}"
    ".role-assistant .key{color:#1a7f37}"
    "nav{display:flex;gap:.6em;align-items:center;margin:1em 0}"
    "pre.yaml{white-space:pre-wrap;word-break:break-word}mark{background:#fff8c5}"
    ".note{color:#57606a}"
)


@dataclass(frozen=True)
class ViewRequest:
    """One page of one file: what the visitor asked for and where the links go."""

    title: str
    name: str
    query: str = ""
    page: int = 1
    base_url: str = ""  # this page's URL without `q`/`page` (keeps its `sig`)
    download_url: str = ""
    sig: str = ""


def _records(data: bytes) -> Iterator[tuple[int, str, Any]]:
    for number, raw in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            yield number, raw, json.loads(raw)
        except json.JSONDecodeError:
            yield number, raw, raw


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)
    if len(text) > MAX_VALUE:
        text = text[:MAX_VALUE] + " …"
    return html.escape(text)


def _field(key: str, value: Any, css: str = "") -> str:
    cls = f"field {css}".strip()
    return (
        f'<div class="{cls}"><div class="key">{html.escape(key)}</div>'
        f'<pre class="val">{_value(value)}</pre></div>'
    )


def _card(line: int, record: Any) -> str:
    fields = []
    if isinstance(record, dict):
        messages = record.get("messages")
        if isinstance(messages, list):
            for message in messages:
                if isinstance(message, dict):
                    role = str(message.get("role", "?"))
                    css = f"role-{role}" if role in ("system", "user", "assistant") else ""
                    fields.append(_field(role, message.get("content", ""), css))
        fields += [_field(str(k), v) for k, v in record.items() if k != "messages"]
    else:
        fields.append(_field("line", record))
    return f'<section class="card"><h2>line {line}</h2>{"".join(fields)}</section>'


def _link(request: ViewRequest, page: int) -> str:
    params = {"sig": request.sig, "page": str(page)}
    if request.query:
        params["q"] = request.query
    return html.escape(f"{request.base_url}?{urlencode(params)}")


def _nav(request: ViewRequest, page: int, pages: int) -> str:
    parts = [f"<span>page {page} of {pages}</span>"]
    if page > 1:
        parts.insert(0, f'<a rel="prev" href="{_link(request, page - 1)}">← previous</a>')
    if page < pages:
        parts.append(f'<a rel="next" href="{_link(request, page + 1)}">next →</a>')
    return f"<nav>{''.join(parts)}</nav>"


def _jsonl_body(request: ViewRequest, data: bytes) -> tuple[str, str]:
    needle = request.query.casefold()
    matches = [(n, rec) for n, raw, rec in _records(data) if needle in raw.casefold()]
    pages = max(1, -(-len(matches) // PAGE_SIZE))
    page = min(max(1, request.page), pages)
    shown = matches[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    what = f"{len(matches)} record{'' if len(matches) == 1 else 's'}" + (
        f" matching “{html.escape(request.query)}”" if needle else ""
    )
    nav = _nav(request, page, pages)
    cards = "".join(_card(n, rec) for n, rec in shown) or '<p class="note">Nothing found.</p>'
    return what, nav + cards + nav


def _yaml_body(request: ViewRequest, data: bytes) -> tuple[str, str]:
    lines = data.decode("utf-8", errors="replace").splitlines()
    needle = request.query.casefold()
    shown = []
    hits = 0
    for line in lines:
        escaped = html.escape(line[:MAX_VALUE])
        if needle and needle in line.casefold():
            hits += 1
            escaped = f"<mark>{escaped}</mark>"
        shown.append(escaped)
    what = f"{len(lines)} lines" + (
        f", {hits} matching “{html.escape(request.query)}”" if needle else ""
    )
    return what, f'<section class="card"><pre class="yaml">{chr(10).join(shown)}</pre></section>'


def render_viewer(request: ViewRequest, data: bytes, *, truncated: bool) -> str:
    """The whole page for `data` (the first `MAX_VIEW_BYTES` of the file)."""
    is_yaml = request.name.endswith((".yaml", ".yml"))
    what, body = (_yaml_body if is_yaml else _jsonl_body)(request, data)
    cut = (
        f'<p class="note">Only the first {MAX_VIEW_BYTES // (1024 * 1024)} MB are shown; '
        "download the file for the rest.</p>"
        if truncated
        else ""
    )
    download = (
        f' <a href="{html.escape(request.download_url)}">download</a>'
        if request.download_url
        else ""
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(request.name)} · {html.escape(request.title)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<header><h1>{html.escape(request.name)}</h1>"
        f'<span class="note">{html.escape(request.title)} · {what}</span>{download}</header>'
        f'<form method="get" role="search"><input type="hidden" name="sig" '
        f'value="{html.escape(request.sig)}"><input type="search" name="q" '
        f'value="{html.escape(request.query)}" placeholder="search this file" '
        'aria-label="search this file"> <button type="submit">Search</button></form>'
        f"{cut}{body}</body></html>\n"
    )

"""The status page's HTML (pure): the overview, one PR's page and the error page.

Server-rendered HTML that works without JavaScript and reloads itself, with no external assets
(the CSS is inline, allowed by the page's Content-Security-Policy), and every value that came
from outside (repository and branch names, errors) escaped here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from instruct_lab_bot.core import messages
from instruct_lab_bot.core.job_view import JobView, Overview, PoolView, PrStatus, WorkerView, iso
from instruct_lab_bot.core.jobs import State
from instruct_lab_bot.core.messages.pools import no_worker
from instruct_lab_bot.core.refs import PullRequestRef, RepoRef

REFRESH_SECONDS = 10

_CSS = """
:root{color-scheme:light dark;--fg:#1f2328;--muted:#59636e;--bg:#fff;--line:#d1d9e0;
--card:#f6f8fa;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--run:#0969da}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;
--line:#30363d;--card:#151b23;--ok:#3fb950;--bad:#f85149;--warn:#d29922;--run:#4493f8}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
header,main,footer{max-width:1200px;margin:0 auto;padding:0 16px}
header{padding-top:16px}footer{padding:24px 16px;color:var(--muted);font-size:.85rem}
h1{font-size:1.35rem;margin:0 0 4px}h2{font-size:1.1rem;margin:28px 0 8px}
h2 .n{color:var(--muted);font-weight:400}
a{color:var(--run);text-decoration:none}a:hover{text-decoration:underline}
.meta,.muted,.note{color:var(--muted);font-size:.85rem}.note{margin:6px 0}
.counts{display:flex;flex-wrap:wrap;gap:8px;list-style:none;padding:0;margin:12px 0 0}
.counts li{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:3px 10px}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.8rem;color:var(--muted);font-weight:600;white-space:nowrap}
code{font:.85em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.badge{display:inline-block;padding:0 8px;border-radius:10px;font-size:.8rem;font-weight:600;
border:1px solid currentColor;white-space:nowrap}
.s-succeeded{color:var(--ok)}.s-failed,.s-dead,.s-timed_out{color:var(--bad)}
.s-cancelled,.s-superseded{color:var(--muted)}.s-running{color:var(--run)}
.s-queued{color:var(--warn)}
progress{width:7em;vertical-align:middle}time{white-space:nowrap}
.error{color:var(--bad);overflow-wrap:anywhere}.stage{overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--card);padding:8px;
border-radius:6px;margin:4px 0}
@media (max-width:700px){
thead{display:none}table,tbody,tr,td{display:block;width:100%}
tr{border:1px solid var(--line);border-radius:8px;margin:0 0 10px;padding:6px 10px;
background:var(--card)}
td{border:0;padding:3px 0;display:flex;gap:8px}
td::before{content:attr(data-label);flex:0 0 6.5em;color:var(--muted);font-size:.8rem}
td>div{flex:1;min-width:0;overflow-wrap:anywhere}}
""".replace("\n", "")


def page(title: str, body: str, *, root: str, refresh: bool = True) -> str:
    meta_refresh = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'{meta_refresh}<meta name="robots" content="noindex">'
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>{body}"
        f'<footer>JSON: <a href="{root}api/v1/jobs">/api/v1/jobs</a> · '
        f'<a href="{root}api/v1/workers">/api/v1/workers</a> · '
        f'<a href="{root}api/v1/pools">/api/v1/pools</a> · '
        "described in docs/status-api.openapi.yaml</footer></body></html>"
    )


def render_error(status_code: int, message: str) -> str:
    """A bare error page (401, 404, 503) that does not reload itself."""
    body = f"<h1>{status_code}</h1><p>{escape(message)}</p>"
    return page(str(status_code), body, root="/", refresh=False)


def render_overview(ov: Overview, extra: str = "") -> str:
    """The front page: counts, queue, running jobs, recently finished jobs, live workers."""
    root = "./"
    counts = [
        (len(ov.queued) + ov.hidden.queued, "queued"),
        (len(ov.running) + ov.hidden.running, "running"),
        (len(ov.workers), "live workers"),
        (ov.dead_letters, "dead letters"),
    ]
    header = (
        f'<header><h1><a href="{root}">{escape(messages.STATUS_TITLE)}</a></h1>'
        f"{_updated(ov.generated_at)}"
        '<ul class="counts">'
        + "".join(f"<li><b>{n}</b> {escape(label)}</li>" for n, label in counts)
        + "</ul></header>"
    )
    now = ov.generated_at
    sections = [
        _section("queued", ov.queued, ov.hidden.queued, _QUEUE_COLUMNS, root, now),
        _section("running", ov.running, ov.hidden.running, _RUNNING_COLUMNS, root, now),
        _section("finished", ov.finished, ov.hidden.finished, _FINISHED_COLUMNS, root, now),
        _pools_section(ov.pools),
        _workers_section(ov.workers, root, now),
        extra,  # more sections (models being served)
    ]
    return page(messages.STATUS_TITLE, header + "<main>" + "".join(sections) + "</main>", root=root)


def render_pr(pr: PrStatus, extra: str = "") -> str:
    """One PR: the builds that can be downloaded, then every job newest first."""
    root = "../../../../"
    title = messages.status_pr_title(pr.pull)
    github = f'<a href="{escape(pr.url)}">On GitHub</a> · '
    header = (
        f'<header><p class="meta"><a href="{root}">{escape(messages.STATUS_TITLE)}</a></p>'
        f"<h1>{escape(title)}</h1>{_updated(pr.generated_at, github)}</header>"
    )
    now = pr.generated_at
    body = (
        _section("builds", pr.builds, 0, _BUILD_COLUMNS, root, now)
        + _section("jobs", pr.jobs, 0, _PR_JOB_COLUMNS, root, now)
        + extra
    )
    return page(
        f"{title} · {messages.STATUS_TITLE}", header + "<main>" + body + "</main>", root=root
    )


Cell = Callable[[JobView, str, float], str]
Columns = Sequence[tuple[str, Cell]]


def _section(
    name: str, jobs: Sequence[JobView], hidden: int, columns: Columns, root: str, now: float
) -> str:
    heading = (
        f'<section id="{name}"><h2>{escape(messages.STATUS_SECTIONS[name])} '
        f'<span class="n">{len(jobs) + hidden}</span></h2>'
    )
    note = f'<p class="note hidden">{escape(messages.status_hidden(hidden))}</p>' if hidden else ""
    if not jobs:
        return (
            heading
            + f'<p class="muted empty">{escape(messages.STATUS_EMPTY[name])}</p>{note}</section>'
        )
    head = "".join(f"<th>{escape(label)}</th>" for label, _cell in columns)
    rows = "".join(
        f'<tr class="job" id="{name}-{escape(job.id)}" data-state="{job.state.value}">'
        + "".join(_td(label, cell(job, root, now)) for label, cell in columns)
        + "</tr>"
        for job in jobs
    )
    return f"{heading}{_table(head, rows)}{note}</section>"


def _pools_section(pools: Sequence[PoolView]) -> str:
    """A row per worker pool (capability): waiting, running, oldest wait, live workers."""
    heading = f'<section id="pools"><h2>{escape(messages.STATUS_SECTIONS["pools"])}</h2>'
    labels = ("Pool", "Waiting", "Running", "Oldest wait", "Live workers")
    head = "".join(f"<th>{label}</th>" for label in labels)
    rows = []
    for pool in pools:
        workers = str(pool.workers)
        if pool.stranded:
            workers += f' <span class="s-queued">{escape(no_worker(pool.capability))}</span>'
        cells = (
            f"<code>{escape(pool.capability)}</code>",
            str(pool.waiting),
            str(pool.running),
            escape(messages.format_duration(pool.oldest_wait)) if pool.waiting else "",
            workers,
        )
        rows.append(
            f'<tr class="pool" id="pool-{escape(pool.capability)}"'
            f' data-stranded="{str(pool.stranded).lower()}">'
            + "".join(_td(label, cell) for label, cell in zip(labels, cells, strict=True))
            + "</tr>"
        )
    return f"{heading}{_table(head, ''.join(rows))}</section>"


def _workers_section(workers: Sequence[WorkerView], root: str, now: float) -> str:
    heading = (
        f'<section id="workers"><h2>{escape(messages.STATUS_SECTIONS["workers"])} '
        f'<span class="n">{len(workers)}</span></h2>'
    )
    if not workers:
        return (
            heading
            + f'<p class="muted empty">{escape(messages.STATUS_EMPTY["workers"])}</p></section>'
        )
    labels = (
        "Worker",
        "Host",
        "PID",
        "Version",
        "ilab",
        "Running",
        "Slots",
        "Pools",
        "Heartbeat",
        "Up since",
    )
    head = "".join(f"<th>{label}</th>" for label in labels)
    rows = []
    for worker in workers:
        cells = (
            f"<code>{escape(worker.name)}</code>",
            escape(worker.host),
            escape(_text(worker.pid)),
            escape(worker.version),
            escape(worker.ilab_version),
            _worker_jobs(worker, root),
            f"{worker.busy}/{escape(_text(worker.concurrency))}",
            escape(", ".join(worker.capabilities)),
            _ago(worker.heartbeat_at, now),
            _ago(worker.started_at, now),
        )
        rows.append(
            f'<tr class="worker" id="worker-{escape(worker.name)}">'
            + "".join(_td(label, cell) for label, cell in zip(labels, cells, strict=True))
            + "</tr>"
        )
    return f"{heading}{_table(head, ''.join(rows))}</section>"


def _worker_jobs(worker: WorkerView, root: str) -> str:
    parts = [
        f'<a href="{_pr_path(root, RepoRef(job.owner, job.repo).pull(job.pr_number))}">'
        f"{escape(job.owner)}/{escape(job.repo)}#{job.pr_number}</a> "
        f"<code>{escape(job.command)}</code>"
        for job in worker.jobs
    ]
    if worker.hidden_jobs:
        parts.append(f'<span class="muted">{worker.hidden_jobs} private</span>')
    return "<br>".join(parts) or '<span class="muted">idle</span>'


# cells ------------------------------------------------------------------------------


def _pr_cell(job: JobView, root: str, _now: float) -> str:
    return (
        f'<a href="{_pr_path(root, RepoRef(job.owner, job.repo).pull(job.pr_number))}">'
        f"{escape(job.owner)}/{escape(job.repo)}#{job.pr_number}</a>"
    )


def _commit_cell(job: JobView, _root: str, _now: float) -> str:
    ref = f' <span class="muted">{escape(job.head_ref)}</span>' if job.head_ref else ""
    return f'<code title="{escape(job.head_sha)}">{escape(job.head_sha[:7])}</code>{ref}'


def _command_cell(job: JobView, _root: str, _now: float) -> str:
    return f"<code>{escape(job.command)}</code>"


def _requester_cell(job: JobView, _root: str, _now: float) -> str:
    return escape(job.requester)


def _position_cell(job: JobView, _root: str, _now: float) -> str:
    return escape(_text(job.position))


def _waiting_cell(job: JobView, _root: str, _now: float) -> str:
    return escape(messages.format_duration(job.wait or 0.0))


def _worker_cell(job: JobView, _root: str, _now: float) -> str:
    return f"<code>{escape(job.worker)}</code>" if job.worker else ""


def _elapsed_cell(job: JobView, _root: str, _now: float) -> str:
    return escape(messages.format_duration(job.duration or 0.0))


def _progress_cell(job: JobView, _root: str, _now: float) -> str:
    percent = round(job.progress or 0.0)
    stage = f' <span class="stage">{escape(job.stage)}</span>' if job.stage else ""
    bar = f'<progress max="100" value="{percent}">{percent}%</progress>'
    return f"<span>{bar} {percent}%{stage}</span>"


def _state_cell(job: JobView, _root: str, _now: float) -> str:
    label = messages.STATUS_STATE_LABELS[job.state]
    return f'<span class="badge s-{job.state.value}">{escape(label)}</span>'


def _finished_cell(job: JobView, _root: str, now: float) -> str:
    return _ago(job.finished_at, now)


def _created_cell(job: JobView, _root: str, now: float) -> str:
    return _ago(job.created_at, now)


def _output_cell(job: JobView, root: str, now: float) -> str:
    parts: list[str] = []
    if job.state is State.RUNNING:
        parts.append(_progress_cell(job, root, now))
    if job.generated is not None:
        parts.append(f"{job.generated} samples")
    if job.links.artifacts_live(now):
        parts.append(f'<a class="artifacts" href="{escape(job.links.artifacts or "")}">files</a>')
    elif job.links.artifacts:
        parts.append('<span class="muted">files expired</span>')
    if job.links.check_run:
        parts.append(f'<a href="{escape(job.links.check_run)}">check run</a>')
    if job.error:
        short = job.error if len(job.error) <= 160 else job.error[:159] + "…"
        parts.append(f'<span class="error" title="{escape(job.error)}">{escape(short)}</span>')
    return " · ".join(parts)


def _id_cell(job: JobView, root: str, _now: float) -> str:
    return f'<a href="{root}api/v1/jobs/{quote(job.id, safe="")}"><code>{escape(job.id)}</code></a>'


_QUEUE_COLUMNS: Columns = (
    ("#", _position_cell),
    ("Pull request", _pr_cell),
    ("Commit", _commit_cell),
    ("Command", _command_cell),
    ("Requested by", _requester_cell),
    ("Waiting", _waiting_cell),
)
_RUNNING_COLUMNS: Columns = (
    ("Pull request", _pr_cell),
    ("Commit", _commit_cell),
    ("Command", _command_cell),
    ("Worker", _worker_cell),
    ("Elapsed", _elapsed_cell),
    ("Progress", _progress_cell),
)
_FINISHED_COLUMNS: Columns = (
    ("Pull request", _pr_cell),
    ("Commit", _commit_cell),
    ("Command", _command_cell),
    ("Result", _state_cell),
    ("Took", _elapsed_cell),
    ("Finished", _finished_cell),
    ("Output", _output_cell),
)
_BUILD_COLUMNS: Columns = (
    ("Commit", _commit_cell),
    ("Command", _command_cell),
    ("Finished", _finished_cell),
    ("Output", _output_cell),
)
_PR_JOB_COLUMNS: Columns = (
    ("Job", _id_cell),
    ("Commit", _commit_cell),
    ("Command", _command_cell),
    ("State", _state_cell),
    ("Requested by", _requester_cell),
    ("Requested", _created_cell),
    ("Took", _elapsed_cell),
    ("Output", _output_cell),
)


# small helpers ----------------------------------------------------------------------


def _pr_path(root: str, pull: PullRequestRef) -> str:
    owner, repo = quote(pull.owner, safe=""), quote(pull.name, safe="")
    return escape(f"{root}repos/{owner}/{repo}/pulls/{pull.number}")


def _td(label: str, content: str) -> str:
    """One cell; the label shows before the value when rows become cards on a phone."""
    return f'<td data-label="{escape(label)}"><div>{content}</div></td>'


def _table(head: str, rows: str) -> str:
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _updated(now: float, before: str = "") -> str:
    stamp = iso(now) or ""
    return (
        f'<p class="meta">{before}Updated <time datetime="{stamp}">{stamp.replace("T", " ")}</time>'
        f" · refreshes every {REFRESH_SECONDS} s</p>"
    )


def _ago(timestamp: float | None, now: float) -> str:
    if timestamp is None:
        return ""
    stamp = iso(timestamp) or ""
    label = messages.status_ago(max(0.0, now - timestamp))
    return f'<time datetime="{stamp}" title="{stamp}">{escape(label)}</time>'


def _text(value: Any) -> str:
    return "" if value is None else str(value)

"""Calls made as one installation: the few REST methods the bot uses."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from typing import Any, Protocol, cast
from urllib.parse import quote

from instruct_lab_bot.adapters.github.errors import GitHubError, QuotaSpent
from instruct_lab_bot.adapters.github.transport import ApiCall, Response
from instruct_lab_bot.core.permissions import role_from_permission
from instruct_lab_bot.core.refs import PullRequestRef, RepoRef
from instruct_lab_bot.core.validation import RepoFile
from instruct_lab_bot.core.write_gate import WriteClass


class Requester(Protocol):
    """The request path (`GitHubApp.request`), named here so this module needs no import of
    the App, which builds installations."""

    async def request(
        self,
        call: ApiCall,
        *,
        installation_id: int | None = None,
        write_class: WriteClass = WriteClass.FINAL,
    ) -> Response | None: ...


class Installation:
    """Calls made as one installation; each call fetches a fresh-enough token."""

    def __init__(self, app: Requester, installation_id: int) -> None:
        self.app = app
        self.installation_id = installation_id

    async def _call(
        self,
        what: str,
        method: str,
        url: str,
        url_vars: dict[str, Any],
        data: Any = None,
        *,
        write_class: WriteClass = WriteClass.FINAL,
    ) -> Any:
        response = await self.app.request(
            ApiCall(what, method, url, url_vars, data),
            installation_id=self.installation_id,
            write_class=write_class,
        )
        return None if response is None else response.data

    async def get_pull(self, pull: PullRequestRef) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            await self._call(
                "read the pull request",
                "GET",
                "/repos/{owner}/{repo}/pulls/{number}",
                _pull_vars(pull),
            ),
        )

    async def add_reaction(self, repo: RepoRef, comment_id: int, content: str) -> None:
        """An acknowledgement only: skipped first when the write budget runs short."""
        await self._call(
            "react to the comment",
            "POST",
            "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
            {**_repo_vars(repo), "comment_id": comment_id},
            {"content": content},
            write_class=WriteClass.PROGRESS,
        )

    async def create_comment(self, pull: PullRequestRef, body: str) -> int:
        data = await self._call(
            "comment on the pull request",
            "POST",
            "/repos/{owner}/{repo}/issues/{number}/comments",
            _pull_vars(pull),
            {"body": body},
        )
        return int(data["id"])

    async def reply_comment(self, pull: PullRequestRef, body: str) -> int | None:
        """A reply to a command, from the replies' own share of the write budget: None when
        that share is spent (the reply is skipped; final results keep their room)."""
        data = await self._call(
            "reply on the pull request",
            "POST",
            "/repos/{owner}/{repo}/issues/{number}/comments",
            _pull_vars(pull),
            {"body": body},
            write_class=WriteClass.REPLY,
        )
        return None if data is None else int(data["id"])

    async def create_check_run(self, repo: RepoRef, payload: dict[str, Any]) -> int:
        data = await self._call(
            "create the check run",
            "POST",
            "/repos/{owner}/{repo}/check-runs",
            _repo_vars(repo),
            payload,
        )
        return int(data["id"])

    async def update_check_run(
        self,
        repo: RepoRef,
        check_run_id: int,
        payload: dict[str, Any],
        *,
        droppable: bool = False,
    ) -> bool:
        """`droppable=True` for progress: skipped when the write budget runs short (each
        progress payload is a full snapshot, so the next one supersedes a skipped one), given
        up on a rate limit rather than waited for. Completions must use the default. False
        when the update was skipped."""
        data = await self._call(
            "update the check run",
            "PATCH",
            "/repos/{owner}/{repo}/check-runs/{check_run_id}",
            {**_repo_vars(repo), "check_run_id": check_run_id},
            payload,
            write_class=WriteClass.PROGRESS if droppable else WriteClass.FINAL,
        )
        return data is not None

    # -- reads for permissions, validation and welcome ------------------------------------

    async def _optional(self, what: str, url: str, url_vars: dict[str, Any]) -> Any:
        """A GET whose 404 means "no such thing" rather than an error."""
        try:
            return await self._call(what, "GET", url, url_vars)
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise

    async def _pages(
        self,
        what: str,
        url: str,
        url_vars: dict[str, Any],
        *,
        key: str | None = None,
        max_pages: int = 30,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a paginated list (100 a page; GitHub caps PR files at 3,000)."""
        for page in range(1, max_pages + 1):
            data = await self._call(
                what, "GET", url + "{?per_page,page}", {**url_vars, "per_page": 100, "page": page}
            )
            items = (data or {}).get(key, []) if key else (data or [])
            for item in items:
                yield item
            if len(items) < 100:
                return

    async def pull_files(self, pull: PullRequestRef, limit: int) -> list[Any]:
        """The PR's changed files as GitHub lists them now (its current head), at most
        `limit` (100 a page); needs no head sha, so it can be asked with the PR itself."""
        found: list[Any] = []
        async for item in self._pages(
            "list the pull request's files",
            "/repos/{owner}/{repo}/pulls/{pull_number}/files",
            {**_repo_vars(pull.repo), "pull_number": pull.number},
            max_pages=max(1, -(-limit // 100)),
        ):
            found.append(item)
        return found[:limit]

    async def permission(self, repo: RepoRef, user: str) -> str:
        """The person's role in the repository: none, read, triage, write, maintain, admin."""
        data = await self._optional(
            "read the collaborator permission",
            "/repos/{owner}/{repo}/collaborators/{username}/permission",
            {**_repo_vars(repo), "username": user},
        )
        return role_from_permission(data) if isinstance(data, dict) else "none"

    async def team_member(self, org: str, team: str, user: str) -> bool:
        """Whether the person is an *active* member of the team (pending invites are not)."""
        data = await self._optional(
            "read the team membership",
            "/orgs/{org}/teams/{team_slug}/memberships/{username}",
            {"org": org, "team_slug": team, "username": user},
        )
        return isinstance(data, dict) and data.get("state") == "active"

    async def compare_files(self, repo: RepoRef, base: str, head: str) -> list[Any]:
        """The files changed between the merge base of `base` and the commit `head` (three-dot
        compare, as a PR's files are), as of that commit; GitHub lists at most 300."""
        data = await self._call(
            "compare the head commit with its base",
            "GET",
            "/repos/{owner}/{repo}/compare/{basehead}{?per_page,page}",
            {
                **_repo_vars(repo),
                "basehead": f"{base}...{head}",
                "per_page": 1,
                "page": 1,
            },
        )
        files = (data or {}).get("files")
        return list(files) if isinstance(files, list) else []

    async def file_at(self, repo: RepoRef, path: str, ref: str) -> RepoFile:
        """What `path` is at `ref` (file, symlink, submodule, folder, missing), with its size
        and bytes; an API error is kind "error", never an exception, so a caller that must
        not pass what it could not read (validation) can say so. Except `QuotaSpent`: that says
        nothing of the file, and its caller waits for the reset to read it then."""
        try:
            data = await self._optional(
                "read a file",
                "/repos/{owner}/{repo}/contents/{+path}{?ref}",
                {**_repo_vars(repo), "path": quote(path, safe="/"), "ref": ref},
            )
        except QuotaSpent:
            raise
        except GitHubError as exc:
            return RepoFile(path, "error", detail=str(exc))
        return _repo_file(path, data)

    async def branch_head(self, repo: RepoRef, branch: str) -> str | None:
        """The commit a branch points at (None: no such branch)."""
        data = await self._optional(
            "read a branch head",
            "/repos/{owner}/{repo}/git/ref/{+ref}",
            {**_repo_vars(repo), "ref": "heads/" + quote(branch, safe="/")},
        )
        sha = ((data or {}).get("object") or {}).get("sha") if isinstance(data, dict) else None
        return sha if isinstance(sha, str) else None

    async def find_check_run(
        self, repo: RepoRef, sha: str, name: str, external_id: str
    ) -> int | None:
        """Our check run for a job, if one was created already (external_id is the job id)."""
        data = await self._call(
            "list check runs",
            "GET",
            "/repos/{owner}/{repo}/commits/{ref}/check-runs{?check_name,filter,per_page}",
            {
                **_repo_vars(repo),
                "ref": sha,
                "check_name": name,
                "filter": "all",
                "per_page": 100,
            },
        )
        for run in (data or {}).get("check_runs", []):
            if run.get("external_id") == external_id:
                return int(run["id"])
        return None

    async def has_comment_with(self, pull: PullRequestRef, marker: str) -> bool:
        """Whether a bot comment on the PR contains `marker` (e.g. the welcome's)."""
        return bool(await self.comments_with(pull, marker, first_only=True))

    async def comments_with(
        self, pull: PullRequestRef, marker: str, *, first_only: bool = False
    ) -> list[int]:
        """The ids of the bot's comments on the PR that contain `marker`, oldest first."""
        found: list[int] = []
        async for comment in self._pages(
            "list comments",
            "/repos/{owner}/{repo}/issues/{number}/comments",
            _pull_vars(pull),
            max_pages=50,
        ):
            user = comment.get("user") or {}
            if user.get("type") == "Bot" and marker in str(comment.get("body", "")):
                found.append(int(comment["id"]))
                if first_only:
                    break
        return sorted(found)

    async def delete_comment(self, repo: RepoRef, comment_id: int) -> None:
        """Remove one of the bot's own comments (a duplicate result)."""
        await self._call(
            "delete a duplicate comment",
            "DELETE",
            "/repos/{owner}/{repo}/issues/comments/{comment_id}",
            {**_repo_vars(repo), "comment_id": comment_id},
        )


def _repo_file(path: str, data: Any) -> RepoFile:
    """A contents API answer as a RepoFile; a link GitHub followed to another file (it
    answers with the target's path) counts as the symlink it is."""
    if data is None:
        return RepoFile(path, "missing")
    if isinstance(data, list):
        return RepoFile(path, "dir")
    kind = data.get("type") if isinstance(data, dict) else None
    if kind in ("symlink", "submodule"):
        return RepoFile(path, kind)
    if kind != "file":
        return RepoFile(path, "error", detail=f"unexpected type {str(kind)[:40]}")
    if data.get("path") != path:
        return RepoFile(path, "symlink")
    size = data.get("size")
    size = size if isinstance(size, int) and size >= 0 else 0
    content = data.get("content")
    if data.get("encoding") != "base64" or not isinstance(content, str):
        return RepoFile(path, "file", size)  # over 1 MB: GitHub sends no content
    try:
        raw = base64.b64decode(content)
    except (binascii.Error, ValueError):
        return RepoFile(path, "error", size, detail="content is not base64")
    return RepoFile(path, "file", max(size, len(raw)), raw)


def _repo_vars(repo: RepoRef) -> dict[str, Any]:
    return {"owner": repo.owner, "repo": repo.name}


def _pull_vars(pull: PullRequestRef) -> dict[str, Any]:
    return {"owner": pull.owner, "repo": pull.name, "number": pull.number}

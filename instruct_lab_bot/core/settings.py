"""Typed, frozen settings read once from the environment (and `.env`) at start-up.

Every problem is collected before failing, so an admin fixes a bad deployment in one pass
instead of one restart per mistake. Secrets are held in `Secret` so that no repr, log line or
error message can print them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from instruct_lab_bot.core.command_table import (
    CAPABILITIES,
    DEFAULT_RESTRICTED,
)
from instruct_lab_bot.core.kubeflow import (
    kubeflow_problems,
)
from instruct_lab_bot.core.redis_target import parse_redis_url
from instruct_lab_bot.core.reply_limits import ReplyLimits
from instruct_lab_bot.core.sandbox import ResourceLimits
from instruct_lab_bot.core.setting_values import (
    MIN_WEBHOOK_SECRET,
    scrub,
)
from instruct_lab_bot.core.setting_values import (
    Secret as Secret,  # part of this module's interface
)
from instruct_lab_bot.core.settings_fields import FIELDS

PREFIX = "ILAB_BOT_"
T = TypeVar("T")


class SettingsError(Exception):
    """Raised with every problem found, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Settings:
    """Everything the server and workers need; see the README's settings table."""

    github_app_id: str = ""
    github_private_key: Secret = Secret("")
    webhook_secret: Secret = Secret("")
    github_api_url: str = "https://api.github.com"
    github_git_url: str = "https://github.com"
    username: str = "instructlab-bot"
    legacy_usernames: tuple[str, ...] = ("instruct-lab-bot",)  # still obeyed, with a note
    redis_url: str = "redis://localhost:6379/0"
    # Redis TLS (a CA to verify the server; a client certificate if Redis asks for one) and
    # durability: how many replicas must have a write that must survive a failover.
    redis_ca_file: str = ""
    redis_cert_file: str = ""
    redis_key_file: str = ""  # masked in the sandbox
    redis_wait_replicas: int = 0
    redis_wait_timeout: float = 1.0
    artifacts_url: str = "file://./var/artifacts"
    s3_endpoint_url: str | None = None
    link_expiry: int = 7 * 24 * 3600
    public_url: str = "http://localhost:8080"
    host: str = "0.0.0.0"  # noqa: S104 - a server in a container listens on all interfaces
    port: int = 8080
    ilab_command: tuple[str, ...] = ("ilab",)
    generate_args: tuple[str, ...] = ()
    # `data generate`'s teacher and pipeline (core/ilab): "" leaves ilab's config/the profile's
    teacher_model: str = ""
    teacher_model_family: str = ""
    teacher_endpoint_url: str = ""
    generate_pipeline: str = ""
    ilab_allow_unsupported: bool = False
    work_dir: Path = Path("./var/work")
    job_timeout: float = 2 * 3600.0
    progress_interval: float = 30.0
    log_format: str = "auto"
    github_timeout: float = 30.0
    git_timeout: float = 600.0
    upload_timeout: float = 600.0
    kill_grace: float = 10.0
    max_deliveries: int = 3
    heartbeat_interval: float = 10.0
    lease_timeout: float = 60.0
    shutdown_grace: float = 15 * 60.0
    job_history_ttl: int = 30 * 24 * 3600
    status_auth: Secret = Secret("")  # `bearer:<token>` or `basic:<user>:<password>`
    allowed_teams: tuple[str, ...] = ()
    min_permission: str = "write"
    restricted_commands: tuple[str, ...] = DEFAULT_RESTRICTED
    required_labels: tuple[str, ...] = ()
    repos: frozenset[str] = frozenset()
    precheck_args: tuple[str, ...] = ()
    precheck_concurrency: int = 4
    precheck_deadline: float = 30 * 60.0
    knowledge_hosts: tuple[str, ...] = ("github.com",)
    validation_max_file_bytes: int = 256 * 1024
    welcome: bool = True
    github_max_concurrency: int = 8
    github_write_limit: int = 80
    # the window `github_write_limit` counts over: a minute; scaled-time benchmarks shrink it
    github_write_window: float = 60.0
    github_retry_deadline: float = 120.0
    github_max_attempts: int = 5
    reconcile_interval: float | None = 600.0
    link_signing_key: Secret = Secret("")  # hex or base64 of >= 32 bytes; "" = shared via Redis
    log_limit: int = 20 * 1024 * 1024  # bytes of `ilab.log` kept (head and tail)
    s3_secret_key: Secret = Secret("")  # AWS_SECRET_ACCESS_KEY, known only to be redacted
    reply_limit_per_user: int = ReplyLimits.per_user
    reply_limit_per_pr: int = ReplyLimits.per_pull_request
    reply_limit_window: float = ReplyLimits.window
    # How `ilab` runs (core/sandbox.py): bubblewrap or, only when chosen, unsandboxed.
    github_private_key_file: str = ""  # masked in the sandbox
    sandbox: str = "bwrap"
    sandbox_network: str = "none"
    sandbox_writable: tuple[Path, ...] = ()
    sandbox_readable: tuple[Path, ...] = ()
    sandbox_hide: tuple[Path, ...] = ()
    runner_socket: Path = Path("/run/instruct-lab-bot/ilab-runner.sock")  # ILAB_BOT_SANDBOX=runner
    ilab_env: tuple[str, ...] = ()
    ilab_memory_limit: int | None = ResourceLimits.memory
    ilab_max_processes: int | None = ResourceLimits.processes
    ilab_max_file_size: int | None = ResourceLimits.file_size
    dispatch_concurrency: int = 16
    validate_max_files: int = 100
    validate_concurrency: int = 4
    validate_timeout: float = 120.0
    # The result reply (branch `reply`): stable artifact links, precheck's prompt.
    stable_links: bool = True  # links on the bot's server that re-sign on each visit
    precheck_context: bool = False  # send a seed's context along with its question
    # Per-repository configuration (core/repo_config.py) and the bounds it must stay within.
    repo_config_path: str = ".github/instruct-lab-bot.yml"
    repo_pipelines: tuple[str, ...] = ("simple", "full")
    repo_max_instructions: int = 30
    # Worker pools: the job kinds this worker takes (one jobs stream each; default all).
    worker_capabilities: tuple[str, ...] = CAPABILITIES
    # Chatting with a PR's served model (services/serving/proxy.py, the chat page).
    chat_link_ttl: int = 7 * 24 * 3600  # how long a chat link in a `serve` reply opens the page
    chat_max_request_bytes: int = 64 * 1024  # an OpenAI request body through the proxy
    chat_max_tokens: int = 1024  # the most tokens one answer may ask for
    chat_user_rate: int = 30  # requests per minute per person (token or address)
    chat_model_rate: int = 120  # requests per minute per PR model
    chat_user_concurrency: int = 2  # answers streaming at once per person
    chat_model_concurrency: int = 8  # answers streaming at once per PR model
    chat_cold_start_timeout: float = 600.0  # waiting for a model scaled to zero to answer
    chat_answer_timeout: float = 300.0  # one answer, once the model is up
    serve_backend: str = "local"  # PR models for chat: `local` (ilab model serve) or `kserve`
    serve_ttl: float = 86400.0  # removed after this long without a request
    serve_ready_timeout: float = 900.0  # never ready within this: removed, the PR is told
    serve_namespace: str = "instruct-lab-bot-models"
    serve_runtime: str = "instruct-lab-bot-vllm"  # the ServingRuntime of PR models
    serve_storage_account: str = "instruct-lab-bot-models"  # reads the models from the store
    serve_gpus: int = 1
    serve_retention: float = 600.0  # Knative keeps the last pod this long after a request
    serve_idle: float = 600.0  # local: stopped after this long without a request
    serve_max_models: int = 2  # local: at most this many running (least recently used stops)
    # `train` (core/training.py): the backend, its limits and ilab's hyperparameters
    # ("" / None leaves ilab's own default for the profile).
    train_backend: str = "worker"
    train_timeout: float = 12 * 3600.0
    train_base_model: str = ""
    train_epochs: int | None = None
    train_effective_batch_size: int | None = None
    train_learning_rate: float | None = None
    train_device: str = ""
    train_pipeline: str = ""
    train_max_per_repo: int = 2
    # ILAB_BOT_TRAIN_BACKEND=kubeflow (core/kubeflow.py): the Data Science Pipelines API and
    # where its runs train (image, GPUs, node label, the S3 data connection Secret).
    kfp_url: str = ""
    kfp_token_file: str = ""
    kfp_ca_file: str = ""
    kfp_namespace: str = ""
    kfp_experiment: str = "instruct-lab-bot"
    kfp_image: str = ""
    kfp_ilab_command: tuple[str, ...] = ("ilab",)
    kfp_gpus: int = 1
    kfp_node_selector: tuple[str, str] | None = None
    kfp_memory: str = ""
    kfp_s3_secret: str = ""
    kfp_poll_interval: float = 15.0
    # `test` (services/worker/model_test.py): the base model served beside the trained one,
    # how long a model server may take to answer, and the judge model of `ilab model evaluate`.
    test_base_model: str = ""  # "" = the base model named in the trained model's manifest
    test_ready_timeout: float = 600.0
    test_answer_timeout: float = 300.0
    test_judge_model: str = ""

    @property
    def recovery_bound(self) -> float:
        """Longest a dead worker's job waits before another worker starts it."""
        return self.lease_timeout + self.heartbeat_interval

    @property
    def reply_limits(self) -> ReplyLimits:
        """How many refusals, help and unknown-command replies one person or PR gets."""
        return ReplyLimits(
            self.reply_limit_per_user, self.reply_limit_per_pr, self.reply_limit_window
        )

    def secrets(self) -> tuple[str, ...]:
        """Every configured secret value, for scrubbing subprocess environments and any text
        that leaves the process (the one `Redactor` is built from these)."""
        found = [
            s.value
            for s in (
                self.github_private_key,
                self.webhook_secret,
                self.link_signing_key,
                self.s3_secret_key,
            )
            if s
        ]
        if self.status_auth:  # bearer:<token> or basic:<user>:<password>: the last part
            found.append(self.status_auth.value.rsplit(":", 1)[-1])
        password = urlsplit(self.redis_url).password
        if password:
            found.append(password)
        return tuple(found)


def _no_files(path: str) -> str:
    raise OSError(2, "reading files was not allowed", path)


def parse_settings(
    env: Mapping[str, str],
    *,
    require_github: bool = True,
    require_secret: bool = True,
    read_file: Callable[[str], str] = _no_files,
) -> Settings:
    """Build `Settings` from a mapping of variables, listing every problem at once.

    Pure: the caller supplies the variables and how to read a named file (the App's key file);
    `cli.load_settings` passes the process environment, `.env` and the file system.
    `require_github=False` is for commands that never talk to GitHub (e.g. `replay`), which
    only need the webhook secret; `require_secret=False` for those that run before an App
    exists (`app create`, `relay`).
    """
    problems: list[str] = []
    values = _parse_fields(env, FIELDS, problems)
    if not env.get(PREFIX + "LEGACY_USERNAMES", "x").strip():
        values["legacy_usernames"] = ()  # set and empty: the old names are not obeyed
    _check_lease(values, problems)
    _check_redis(values, problems)
    problems += kubeflow_problems(values)
    if require_secret or env.get(PREFIX + "WEBHOOK_SECRET"):
        _load_webhook_secret(env, values, problems)
    s3_secret = env.get("AWS_SECRET_ACCESS_KEY", "")
    if s3_secret:
        values["s3_secret_key"] = Secret(s3_secret)

    if require_github:
        _load_github_app(env, values, problems, read_file)

    if problems:
        raise SettingsError(problems)
    return Settings(**values)  # type: ignore[arg-type]


#: What `ilab-runner` reads: it holds no secrets, so it needs no GitHub or webhook settings.
RUNNER_FIELDS = frozenset(
    {"ILAB_COMMAND", "ILAB_ENV", "ILAB_MEMORY_LIMIT", "ILAB_MAX_PROCESSES", "ILAB_MAX_FILE_SIZE"}
    | {"LOG_FORMAT"}
)


def parse_runner_settings(env: Mapping[str, str]) -> Settings:
    """The ilab runner's settings (`RUNNER_FIELDS`); every other field keeps its default."""
    problems: list[str] = []
    values = _parse_fields(env, [f for f in FIELDS if f[0] in RUNNER_FIELDS], problems)
    if problems:
        raise SettingsError(problems)
    return Settings(**values)  # type: ignore[arg-type]


def _parse_fields(
    env: Mapping[str, str],
    fields: Sequence[tuple[str, str, Callable[[str], object]]],
    problems: list[str],
) -> dict[str, object]:
    values: dict[str, object] = {}
    for name, attr, parse in fields:
        raw = env.get(PREFIX + name, "").strip()
        if not raw:
            continue
        try:
            values[attr] = parse(raw)
        except ValueError as exc:
            problems.append(f"{PREFIX}{name}: {scrub(str(exc), raw)}")
    return values


def _load_webhook_secret(
    env: Mapping[str, str], values: dict[str, object], problems: list[str]
) -> None:
    secret = env.get(PREFIX + "WEBHOOK_SECRET", "")
    if not secret:
        problems.append(f"{PREFIX}WEBHOOK_SECRET: required (the GitHub App's webhook secret)")
    elif len(secret) < MIN_WEBHOOK_SECRET:
        problems.append(
            f"{PREFIX}WEBHOOK_SECRET: must be at least {MIN_WEBHOOK_SECRET} characters "
            "(e.g. `openssl rand -hex 32`; a short one can be guessed offline)"
        )
    else:
        values["webhook_secret"] = Secret(secret)


def _load_github_app(
    env: Mapping[str, str],
    values: dict[str, object],
    problems: list[str],
    read_file: Callable[[str], str],
) -> None:
    app_id = env.get(PREFIX + "GITHUB_APP_ID", "").strip()
    if not app_id:
        problems.append(f"{PREFIX}GITHUB_APP_ID: required (the GitHub App's numeric id)")
    elif not app_id.isdigit():
        problems.append(f"{PREFIX}GITHUB_APP_ID: must be a number")
    else:
        values["github_app_id"] = app_id

    pem = env.get(PREFIX + "GITHUB_PRIVATE_KEY", "")
    pem_file = env.get(PREFIX + "GITHUB_PRIVATE_KEY_FILE", "").strip()
    if pem and pem_file:
        problems.append(
            f"{PREFIX}GITHUB_PRIVATE_KEY and {PREFIX}GITHUB_PRIVATE_KEY_FILE: set only one"
        )
        return
    if pem_file:
        values["github_private_key_file"] = pem_file
        try:
            pem = read_file(pem_file)
        except OSError as exc:
            problems.append(
                f"{PREFIX}GITHUB_PRIVATE_KEY_FILE: cannot read {pem_file}: {exc.strerror}"
            )
            return
    if not pem:
        problems.append(
            f"{PREFIX}GITHUB_PRIVATE_KEY or {PREFIX}GITHUB_PRIVATE_KEY_FILE: required (PEM key)"
        )
        return
    pem = pem.replace("\\n", "\n").strip() + "\n"  # one-line PEMs from env files
    if "PRIVATE KEY-----" not in pem:
        problems.append(f"{PREFIX}GITHUB_PRIVATE_KEY: not a PEM private key")
        return
    values["github_private_key"] = Secret(pem)


def _check_lease(values: Mapping[str, object], problems: list[str]) -> None:
    heartbeat = float(values.get("heartbeat_interval", Settings.heartbeat_interval))  # type: ignore[arg-type]
    lease = float(values.get("lease_timeout", Settings.lease_timeout))  # type: ignore[arg-type]
    if lease < 2 * heartbeat:
        problems.append(
            f"{PREFIX}LEASE_TIMEOUT: must be at least twice {PREFIX}HEARTBEAT_INTERVAL "
            "(or a live worker's job would be taken over)"
        )


def _check_redis(values: Mapping[str, object], problems: list[str]) -> None:
    if bool(values.get("redis_cert_file")) != bool(values.get("redis_key_file")):
        problems.append(
            f"{PREFIX}REDIS_CERT_FILE and {PREFIX}REDIS_KEY_FILE: set both (a client "
            "certificate and its key) or neither"
        )
    url = str(values.get("redis_url", Settings.redis_url))
    if values.get("redis_wait_replicas") and parse_redis_url(url).kind == "cluster":
        problems.append(
            f"{PREFIX}REDIS_WAIT_REPLICAS: not supported with a Cluster URL (WAIT must run on "
            "the connection that wrote; use 0, or Sentinel)"
        )


# Each setting: its variable (after ILAB_BOT_), the Settings field, and its parser.

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

from instruct_lab_bot.core.command_table import DEFAULT_RESTRICTED
from instruct_lab_bot.core.redis_target import parse_redis_url
from instruct_lab_bot.core.reply_limits import ReplyLimits
from instruct_lab_bot.core.sandbox import ResourceLimits, parse_count, parse_env_names, parse_size
from instruct_lab_bot.core.setting_values import (
    MIN_WEBHOOK_SECRET,
    parse_argv,
    parse_artifacts_setting,
    parse_bool,
    parse_choice,
    parse_commands,
    parse_count_or_zero,
    parse_dns_label,
    parse_duration,
    parse_file_bytes,
    parse_hosts,
    parse_list,
    parse_log_format,
    parse_nonempty_argv,
    parse_optional_duration,
    parse_path,
    parse_paths,
    parse_permission,
    parse_port,
    parse_positive_float,
    parse_positive_int,
    parse_redis_setting,
    parse_repo_path,
    parse_repos,
    parse_signing_key,
    parse_size_text,
    parse_status_auth_secret,
    parse_teams,
    parse_url,
    parse_username,
    parse_usernames,
    parse_word,
    scrub,
)
from instruct_lab_bot.core.setting_values import (
    Secret as Secret,  # part of this module's interface
)

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
    # `test` (services/worker/model_test.py): the base model served beside the trained one,
    # how long a model server may take to answer, and the judge of `ilab model evaluate`.
    test_base_model: str = ""  # "" = the base model named in the trained model's manifest
    test_ready_timeout: float = 600.0
    test_answer_timeout: float = 300.0
    test_judge_url: str = ""
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
    values = _parse_fields(env, _FIELDS, problems)
    if not env.get(PREFIX + "LEGACY_USERNAMES", "x").strip():
        values["legacy_usernames"] = ()  # set and empty: the old names are not obeyed
    _check_lease(values, problems)
    _check_redis(values, problems)
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
    values = _parse_fields(env, [f for f in _FIELDS if f[0] in RUNNER_FIELDS], problems)
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
_FIELDS: tuple[tuple[str, str, Callable[[str], object]], ...] = (
    ("GITHUB_API_URL", "github_api_url", lambda v: parse_url(v, ("http", "https"))),
    ("GITHUB_GIT_URL", "github_git_url", lambda v: parse_url(v, ("http", "https", "file"))),
    ("USERNAME", "username", parse_username),
    ("LEGACY_USERNAMES", "legacy_usernames", parse_usernames),
    ("REDIS_URL", "redis_url", parse_redis_setting),
    ("REDIS_CA_FILE", "redis_ca_file", str),
    ("REDIS_CERT_FILE", "redis_cert_file", str),
    ("REDIS_KEY_FILE", "redis_key_file", str),
    ("REDIS_WAIT_REPLICAS", "redis_wait_replicas", parse_count_or_zero),
    ("REDIS_WAIT_TIMEOUT", "redis_wait_timeout", parse_duration),
    ("ARTIFACTS_URL", "artifacts_url", parse_artifacts_setting),
    ("S3_ENDPOINT_URL", "s3_endpoint_url", lambda v: parse_url(v, ("http", "https"))),
    ("LINK_EXPIRY", "link_expiry", lambda v: int(parse_duration(v))),
    ("PUBLIC_URL", "public_url", lambda v: parse_url(v, ("http", "https"))),
    ("HOST", "host", str),
    ("PORT", "port", parse_port),
    ("ILAB_COMMAND", "ilab_command", parse_nonempty_argv),
    ("GENERATE_ARGS", "generate_args", parse_argv),
    ("TEACHER_MODEL", "teacher_model", parse_word),
    ("TEACHER_MODEL_FAMILY", "teacher_model_family", parse_word),
    ("TEACHER_ENDPOINT_URL", "teacher_endpoint_url", lambda v: parse_url(v, ("http", "https"))),
    ("GENERATE_PIPELINE", "generate_pipeline", parse_word),
    ("ILAB_ALLOW_UNSUPPORTED", "ilab_allow_unsupported", parse_bool),
    ("WORK_DIR", "work_dir", Path),
    ("JOB_TIMEOUT", "job_timeout", parse_duration),
    ("PROGRESS_INTERVAL", "progress_interval", parse_duration),
    ("LOG_FORMAT", "log_format", parse_log_format),
    ("GITHUB_TIMEOUT", "github_timeout", parse_duration),
    ("GIT_TIMEOUT", "git_timeout", parse_duration),
    ("UPLOAD_TIMEOUT", "upload_timeout", parse_duration),
    ("KILL_GRACE", "kill_grace", parse_duration),
    ("MAX_DELIVERIES", "max_deliveries", parse_positive_int),
    ("HEARTBEAT_INTERVAL", "heartbeat_interval", parse_duration),
    ("LEASE_TIMEOUT", "lease_timeout", parse_duration),
    ("SHUTDOWN_GRACE", "shutdown_grace", parse_duration),
    ("JOB_HISTORY_TTL", "job_history_ttl", lambda v: int(parse_duration(v))),
    ("STATUS_AUTH", "status_auth", parse_status_auth_secret),
    ("ALLOWED_TEAMS", "allowed_teams", parse_teams),
    ("MIN_PERMISSION", "min_permission", parse_permission),
    ("RESTRICTED_COMMANDS", "restricted_commands", parse_commands),
    ("REQUIRED_LABELS", "required_labels", parse_list),
    ("REPOS", "repos", parse_repos),
    ("PRECHECK_ARGS", "precheck_args", parse_argv),
    ("PRECHECK_CONCURRENCY", "precheck_concurrency", parse_positive_int),
    ("PRECHECK_DEADLINE", "precheck_deadline", parse_duration),
    ("KNOWLEDGE_HOSTS", "knowledge_hosts", parse_hosts),
    ("VALIDATION_MAX_FILE_BYTES", "validation_max_file_bytes", parse_file_bytes),
    ("WELCOME", "welcome", parse_bool),
    ("GITHUB_MAX_CONCURRENCY", "github_max_concurrency", parse_positive_int),
    ("GITHUB_WRITES_PER_MINUTE", "github_write_limit", parse_positive_int),
    ("GITHUB_RETRY_DEADLINE", "github_retry_deadline", parse_duration),
    ("GITHUB_MAX_ATTEMPTS", "github_max_attempts", parse_positive_int),
    ("RECONCILE_INTERVAL", "reconcile_interval", parse_optional_duration),
    ("LINK_SIGNING_KEY", "link_signing_key", parse_signing_key),
    ("LOG_LIMIT", "log_limit", parse_size_text),
    ("REPLY_LIMIT_PER_USER", "reply_limit_per_user", parse_positive_int),
    ("REPLY_LIMIT_PER_PR", "reply_limit_per_pr", parse_positive_int),
    ("REPLY_LIMIT_WINDOW", "reply_limit_window", parse_duration),
    ("SANDBOX", "sandbox", parse_choice("bwrap", "runner", "off")),
    ("RUNNER_SOCKET", "runner_socket", parse_path),
    ("SANDBOX_NETWORK", "sandbox_network", parse_choice("none", "host")),
    ("SANDBOX_WRITABLE", "sandbox_writable", parse_paths),
    ("SANDBOX_READABLE", "sandbox_readable", parse_paths),
    ("SANDBOX_HIDE", "sandbox_hide", parse_paths),
    ("ILAB_ENV", "ilab_env", parse_env_names),
    ("ILAB_MEMORY_LIMIT", "ilab_memory_limit", parse_size),
    ("ILAB_MAX_PROCESSES", "ilab_max_processes", parse_count),
    ("ILAB_MAX_FILE_SIZE", "ilab_max_file_size", parse_size),
    ("DISPATCH_CONCURRENCY", "dispatch_concurrency", parse_positive_int),
    ("VALIDATE_MAX_FILES", "validate_max_files", parse_positive_int),
    ("VALIDATE_CONCURRENCY", "validate_concurrency", parse_positive_int),
    ("VALIDATE_TIMEOUT", "validate_timeout", parse_duration),
    ("STABLE_LINKS", "stable_links", parse_bool),
    ("PRECHECK_CONTEXT", "precheck_context", parse_bool),
    ("REPO_CONFIG_PATH", "repo_config_path", parse_repo_path),
    ("REPO_PIPELINES", "repo_pipelines", parse_list),
    ("REPO_MAX_INSTRUCTIONS", "repo_max_instructions", parse_positive_int),
    ("CHAT_LINK_TTL", "chat_link_ttl", lambda v: int(parse_duration(v))),
    ("CHAT_MAX_REQUEST_BYTES", "chat_max_request_bytes", parse_file_bytes),
    ("CHAT_MAX_TOKENS", "chat_max_tokens", parse_positive_int),
    ("CHAT_USER_RATE", "chat_user_rate", parse_positive_int),
    ("CHAT_MODEL_RATE", "chat_model_rate", parse_positive_int),
    ("CHAT_USER_CONCURRENCY", "chat_user_concurrency", parse_positive_int),
    ("CHAT_MODEL_CONCURRENCY", "chat_model_concurrency", parse_positive_int),
    ("CHAT_COLD_START_TIMEOUT", "chat_cold_start_timeout", parse_duration),
    ("CHAT_ANSWER_TIMEOUT", "chat_answer_timeout", parse_duration),
    ("SERVE_BACKEND", "serve_backend", parse_choice("local", "kserve")),
    ("SERVE_TTL", "serve_ttl", parse_duration),
    ("SERVE_READY_TIMEOUT", "serve_ready_timeout", parse_duration),
    ("SERVE_NAMESPACE", "serve_namespace", parse_dns_label),
    ("SERVE_RUNTIME", "serve_runtime", parse_dns_label),
    ("SERVE_STORAGE_ACCOUNT", "serve_storage_account", parse_dns_label),
    ("SERVE_GPUS", "serve_gpus", parse_count_or_zero),
    ("SERVE_RETENTION", "serve_retention", parse_duration),
    ("SERVE_IDLE", "serve_idle", parse_duration),
    ("SERVE_MAX_MODELS", "serve_max_models", parse_positive_int),
    ("TRAIN_BACKEND", "train_backend", parse_choice("worker", "kubeflow")),
    ("TRAIN_TIMEOUT", "train_timeout", parse_duration),
    ("TRAIN_BASE_MODEL", "train_base_model", parse_word),
    ("TRAIN_EPOCHS", "train_epochs", parse_positive_int),
    ("TRAIN_EFFECTIVE_BATCH_SIZE", "train_effective_batch_size", parse_positive_int),
    ("TRAIN_LEARNING_RATE", "train_learning_rate", parse_positive_float),
    ("TRAIN_DEVICE", "train_device", parse_choice("cpu", "cuda", "hpu", "mps")),
    ("TRAIN_PIPELINE", "train_pipeline", parse_choice("simple", "full", "accelerated")),
    ("TRAIN_MAX_PER_REPO", "train_max_per_repo", parse_positive_int),
    ("TEST_BASE_MODEL", "test_base_model", parse_word),
    ("TEST_READY_TIMEOUT", "test_ready_timeout", parse_duration),
    ("TEST_ANSWER_TIMEOUT", "test_answer_timeout", parse_duration),
    ("TEST_JUDGE_URL", "test_judge_url", lambda v: parse_url(v, ("http", "https"))),
    ("TEST_JUDGE_MODEL", "test_judge_model", parse_word),
)

"""What `instruct-lab-bot doctor` (and the start-up preflight) tells an admin: one line per
check, and for every failure the fix (pure)."""

from __future__ import annotations

FIX_KEY = (
    "download a new private key from the App's settings page and set "
    "ILAB_BOT_GITHUB_PRIVATE_KEY_FILE to it (the PEM, unedited)"
)
FIX_APP_REFUSED = (
    "ILAB_BOT_GITHUB_APP_ID and the private key must belong to the same App, and this "
    "host's clock must be right (GitHub refuses JWTs from a skewed clock)"
)
FIX_GITHUB_UNREACHABLE = "check ILAB_BOT_GITHUB_API_URL and this host's access to it"
FIX_SECRET = "use `openssl rand -hex 32` in the App's settings and ILAB_BOT_WEBHOOK_SECRET"  # noqa: S105
FIX_REDIS_UNREACHABLE = "check ILAB_BOT_REDIS_URL (host, port, password) and that Redis runs"
FIX_REDIS_VERSION = "upgrade to Redis 6.2 or later (the queue uses XAUTOCLAIM and GETDEL)"
FIX_REDIS_PERSISTENCE = (
    "turn on persistence (`appendonly yes` in redis.conf, or `CONFIG SET appendonly yes`): "
    "without it a Redis restart loses every queued job"
)
FIX_STORE = (
    "check ILAB_BOT_ARTIFACTS_URL, the bucket's existence and the credentials' "
    "s3:PutObject, s3:GetObject and s3:DeleteObject rights (or the folder's permissions)"
)
FIX_ILAB = (
    "install InstructLab on this worker (`pip install instructlab`) or point "
    "ILAB_BOT_ILAB_COMMAND at its `ilab`"
)
FIX_SETTINGS = "see the README's settings table"

OK = "ok"
FAIL = "FAIL"


def check_line(ok: bool, name: str, detail: str, fix: str = "") -> str:
    """`ok   redis: 7.0.15, appendonly` or `FAIL redis: … (fix: …)`."""
    mark = OK if ok else FAIL
    text = f"{mark:<4} {name}: {detail}"
    return text if ok or not fix else f"{text} (fix: {fix})"


def summary(failed: int, total: int) -> str:
    if failed == 0:
        return f"all {total} checks passed"
    return f"{failed} of {total} checks failed"


def listening(host: str, port: int, public_url: str) -> str:
    """The server's start-up line: where it listens and the URLs an admin configures."""
    public = public_url.rstrip("/")
    return (
        f"listening on http://{host}:{port} (webhook: {public}/api/github/hook, status: {public}/)"
    )


def settings_problem(problem: str) -> str:
    return check_line(False, "settings", problem, FIX_SETTINGS)

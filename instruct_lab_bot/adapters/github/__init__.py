"""GitHub adapter: App authentication and the few calls the bot makes, over gidgethub."""

from instruct_lab_bot.adapters.github.app import GitHubApp, GitHubAppConfig, build_github_app
from instruct_lab_bot.adapters.github.errors import GitHubError, QuotaSpent
from instruct_lab_bot.adapters.github.installation import Installation

__all__ = [
    "GitHubApp",
    "GitHubAppConfig",
    "GitHubError",
    "Installation",
    "QuotaSpent",
    "build_github_app",
]

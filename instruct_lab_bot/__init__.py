"""instruct-lab-bot: a GitHub App that runs InstructLab data generation for taxonomy PRs."""

__version__ = "0.1.0"

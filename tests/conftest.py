"""Shared fixtures: each real service the tests use lives in one plugin module."""

pytest_plugins = [
    "tests.fixtures.redis",
    "tests.fixtures.github",
    "tests.fixtures.s3",
    "tests.fixtures.taxonomy",
    "tests.fixtures.bot",
    "tests.fixtures.world",
]

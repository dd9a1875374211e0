"""Shared fixtures. Real dependencies (broker, Redis, gunicorn) are started by the fixture modules
under tests/fixtures/, each on a free loopback port, so the suite needs nothing running beforehand."""

pytest_plugins: list[str] = [
    "tests.fixtures.broker",
    "tests.fixtures.redis",
    "tests.fixtures.services",
]

"""Fixtures: the real services, an app per test on a clean state (also on a cluster), members and tokens in bulk.

The run itself is kept to itself (tests/isolation.py): a connection to a service of this machine it
was not given is refused, and a process of the run still alive after the run fails it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app, revocation_view
from app.extensions import clients, db
from support.redis_servers import Cluster, running_cluster
from tests import isolation
from tests import services as svc
from tests.helpers import TEST_SECRET, app_config, make_members

MARK = pytest.StashKey[str]()
RUN_FOLDER = pytest.StashKey[Path]()
GUARD = pytest.StashKey[isolation.Guard]()
USED = pytest.StashKey[svc.Services]()
PROBLEMS = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    """Mark every process of this run, and refuse connections to services of this machine it was not given."""
    config.stash[MARK] = isolation.mark_run()
    guard = config.stash[GUARD] = isolation.Guard(isolation.forbidden(svc.given()))
    guard.install()


def pytest_report_header(config: pytest.Config) -> str:
    """Which services the run tries first, and what it does if they do not answer."""
    database_url, redis_url = (svc.shown(url) for url in svc.given())
    otherwise = "the run stops" if svc.required() else "embedded SQLite and Redis"
    return f"services: database {database_url}, Redis {redis_url}; if they do not answer: {otherwise}"


@pytest.hookimpl(trylast=True)  # after every fixture's teardown, an interrupted run's included
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if a test touched a service it was not given, or a process of the run outlived it (killed)."""
    config = session.config
    config.stash[GUARD].uninstall()
    left = isolation.leftovers(config.stash[MARK], config.stash[RUN_FOLDER]) if RUN_FOLDER in config.stash else {}
    isolation.kill(left)
    touched = config.stash[GUARD].touched
    problems = [f"touched {t} ({touched.count(t)} connections)" for t in dict.fromkeys(touched)]
    problems += [f"outlived the run (killed): pid {pid}: {command}" for pid, command in sorted(left.items())]
    config.stash[PROBLEMS] = problems
    if problems and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The services the run used; what it touched or left behind that it should not have."""
    used = config.stash.get(USED, None)
    if used is not None:
        kind = "embedded SQLite and Redis" if used.embedded else "real services"
        terminalreporter.write_line(
            f"services used: {kind}: {svc.shown(used.database_url)}, {svc.shown(used.redis_url)}"
        )
    problems = config.stash.get(PROBLEMS, [])
    if problems:
        terminalreporter.section("the run did not keep to itself", red=True)
        for problem in problems:
            terminalreporter.write_line(problem, red=True)


@pytest.fixture(scope="session", autouse=True)
def run_folder(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's temporary folder: a process still at work in it after the run has outlived the run."""
    folder = pytestconfig.stash[RUN_FOLDER] = tmp_path_factory.getbasetemp()
    return folder


@pytest.fixture(scope="session")
def services(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[svc.Services]:
    """The database and Redis of this run (an embedded Redis stops at its end); a stop if a required one is missing."""
    scratch = tmp_path_factory.mktemp("embedded")
    try:
        given = svc.resolve(scratch)
    except svc.ServiceMissing as exc:
        pytest.exit(f"required service missing: {exc}", returncode=3)
    pytestconfig.stash[USED] = given
    try:
        yield given
    finally:
        revocation_view.stop_all()  # no app's refresher keeps reading a Redis that is going away
        svc.release(given, scratch)


@pytest.fixture(scope="session")
def migrated(services: svc.Services) -> None:
    """Bring the suite's database up to date once, through the real migrations."""
    from flask_migrate import upgrade

    app = create_app(app_config(services))
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture
def strategy() -> str:
    """The issue strategy under test; parametrize ``strategy`` to cover both."""
    return "lua"


@pytest.fixture
def app(services: svc.Services, migrated: None, strategy: str) -> Iterator[Flask]:
    """An app on clean tables and a flushed Redis db, flushed again after the test."""
    app = create_app(app_config(services, strategy))
    with app.app_context():
        svc.reset(db.engine, clients().broker)
    # No context stays pushed: each test-client request gets its own, as in production, so no
    # session holds a stale snapshot across requests.
    yield app
    app.extensions["revocation_view"].stop()  # no refresher outlives its test (nor the embedded Redis it reads)
    with app.app_context():
        clients().broker.flushdb()
        db.engine.dispose()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 3-primary Redis Cluster for the run (flushed around each test); a failure to build it fails, never skips."""
    with running_cluster(tmp_path_factory.mktemp("cluster")) as built:
        yield built


@pytest.fixture
def cluster_app(services: svc.Services, migrated: None, cluster: Cluster, strategy: str) -> Iterator[Flask]:
    """An app with REDIS_CLUSTER_URL on ``cluster`` and RQ on the suite's Redis, all of it clean before and after."""
    app = create_app(app_config(services, strategy, REDIS_CLUSTER_URL=cluster.url))
    cluster.flush()
    with app.app_context():
        assert clients().state_redis is not clients().broker
        svc.reset(db.engine, clients().broker)
    yield app
    app.extensions["revocation_view"].stop()
    cluster.flush()
    with app.app_context():
        clients().broker.flushdb()
        clients().state_redis.close()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of ``app``."""
    return app.test_client()


@pytest.fixture(scope="session")
def process_env(services: svc.Services) -> dict[str, str]:
    """Environment for the service's real processes (gunicorn, worker, scheduler)."""
    return dict(
        os.environ,
        DATABASE_URL=services.database_url,
        REDIS_URL=services.redis_url,
        JWT_SECRET_KEY=TEST_SECRET,
        APP_ENV="development",
        PYTHONWARNINGS="ignore",
        PYTHONUNBUFFERED="1",
        DRAIN_INTERVAL_MS="50",
        DRAIN_LOCK_EXPIRE_S="2",
    )


@pytest.fixture
def cluster_env(process_env: dict[str, str], cluster: Cluster) -> dict[str, str]:
    """The real processes' environment: issuance state on the cluster, RQ on REDIS_URL."""
    return dict(process_env, REDIS_CLUSTER_URL=cluster.url)


@pytest.fixture(params=["redis", "cluster"])
def backend(request: pytest.FixtureRequest) -> tuple[Flask, dict[str, str]]:
    """An app and the real processes' environment, on the suite's Redis or on a 3-primary cluster."""
    if request.param == "cluster":
        return request.getfixturevalue("cluster_app"), request.getfixturevalue("cluster_env")
    return request.getfixturevalue("app"), request.getfixturevalue("process_env")


@pytest.fixture
def seller(app: Flask) -> tuple[int, str]:
    """A seller's id and token."""
    return make_members(app, 1, role="seller", prefix="seller")[0]

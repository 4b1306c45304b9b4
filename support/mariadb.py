"""A private mariadbd on loopback: its own datadir, socket and port, to kill and restart at will.

The machine's shared MariaDB is never touched.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from pathlib import Path

import pymysql

from support.procs import Proc, free_port, wait_for

START_TIMEOUT_S = 60.0


class MissingBinary(RuntimeError):
    """None of the programs asked for is installed."""


def find_binary(*names: str) -> str:
    """The first of ``names`` found on PATH (or in /usr/sbin)."""
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
        if found:
            return found
    raise MissingBinary(f"none of {', '.join(names)} is installed")


class MariaDB:
    """A mariadbd of one's own: own datadir, socket and port; root without a password."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.datadir = folder / "data"
        self.port = free_port()
        self.user = getpass.getuser()
        self.server = find_binary("mariadbd", "mysqld")
        self.installer = find_binary("mariadb-install-db", "mysql_install_db")
        self.proc: Proc | None = None

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    def install(self) -> MariaDB:
        """Create the system tables in a fresh datadir."""
        done = subprocess.run(
            [
                self.installer,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--user={self.user}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.installer} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        return self

    def start(self) -> MariaDB:
        """Start (or restart) on the same datadir and port; return once it answers."""
        args = [
            self.server,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--user={self.user}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.folder / 'mysqld.sock'}",
            f"--pid-file={self.folder / 'mysqld.pid'}",
            f"--log-error={self.folder / 'error.log'}",
            "--skip-log-bin",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--max-connections=300",
        ]
        self.proc = Proc(args, os.environ, self.folder / "mariadbd.out")
        wait_for(self._ready, START_TIMEOUT_S, f"mariadbd on port {self.port}", every_s=0.1)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.popen.poll() is not None:
            log = self.folder / "error.log"
            raise AssertionError(f"mariadbd exited: {log.read_text()[-3000:] if log.exists() else ''}")
        try:
            pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1).close()
            return True
        except pymysql.err.MySQLError:
            return False

    def create_database(self, name: str) -> None:
        """A fresh, empty database ``name`` in utf8mb4."""
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        finally:
            conn.close()

    def kill9(self) -> None:
        """SIGKILL: a crash; InnoDB recovers committed transactions at the next start."""
        assert self.proc is not None
        self.proc.kill9()
        self.proc.stop()

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (in-flight transactions are rolled back)."""
        if self.proc is not None:
            self.proc.stop()

    def answers(self) -> bool:
        """Whether the server accepts a connection right now."""
        return self.proc is not None and self.proc.popen.poll() is None and self._ready()

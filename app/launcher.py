"""Run the whole service in the foreground: ``python -m app.launcher``.

Starts the embedded Redis when REDIS_URL is unset, brings the schema up to date, then runs the
Procfile (API, RQ worker, scheduler) with honcho, every process pointed at the same services.
Ctrl-C stops them all, then the embedded Redis (its data stays in the instance folder).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.logs import configure as configure_logging

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    """Prepare the services, run the Procfile, clean up; return honcho's exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args(argv)
    configure_logging("launcher")
    from flask_migrate import upgrade

    from app import create_app, embedded

    with embedded.serving():
        app = create_app()
        with app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
        return run_procfile(app, args.port)


def run_procfile(app: Any, port: int) -> int:
    """honcho with every process pointed at ``app``'s database and Redis; its exit status."""
    env = dict(
        os.environ,
        REDIS_URL=app.config["REDIS_URL"],
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        PYTHONUNBUFFERED="1",
        # The Procfile says `gunicorn` and `python`: make them this interpreter's, venv activated or not.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    print(
        f"coupon-rush: API on http://127.0.0.1:{port}  strategy={app.config['ISSUE_STRATEGY']}  "
        f"database={app.config['SQLALCHEMY_DATABASE_URI']}  redis={app.config['REDIS_URL']}  (Ctrl-C stops)",
        flush=True,
    )
    honcho = subprocess.Popen([sys.executable, "-m", "honcho", "start", "--port", str(port)], cwd=ROOT, env=env)
    try:
        return honcho.wait()
    except KeyboardInterrupt:  # honcho got the same Ctrl-C and is stopping its processes
        return honcho.wait()


if __name__ == "__main__":
    sys.exit(main())

"""gunicorn settings for the API: ``gunicorn -c gunicorn.conf.py wsgi:app``.

gthread workers hold many keep-alive connections each and serve them from a thread pool, so
1,600 concurrent clients queue fairly on two cores (sync workers cannot keep a connection
open; gevent measured unfair here: a fast median with a tail of seconds). Every value can be
overridden from the environment.
"""

import multiprocessing
import os
import shutil
import tempfile

from gunicorn import glogging

from app import logs

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
# Measured with the lab on 2 cores (1,600 users): 4 x 16 beat 2 x 32, 3 x 32, 4 x 8, 6 x 8 and
# 2 x 8 by 10-25% on the read ceiling and halved the median latency of 2 x 32. More processes
# than cores win because each has its own GIL; fewer threads cut the switching between them.
workers = int(os.environ.get("WEB_WORKERS", 2 * multiprocessing.cpu_count()))
threads = int(os.environ.get("WEB_THREADS", "16"))
# Connections one worker keeps open: workers x this must exceed the expected clients.
worker_connections = int(os.environ.get("WEB_CONNECTIONS", "1000"))
backlog = 2048
keepalive = 75
timeout = 30
graceful_timeout = 10
accesslog = os.environ.get("ACCESS_LOG") or None
# The request id (app/request_id.py) ends every access line, as it is on every line the request logs.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(L)ss %({x-request-id}o)s'
logconfig_dict = logs.config("api", access_log=accesslog)


class Logger(glogging.Logger):
    """gunicorn's logger, building an access line only when ACCESS_LOG asks for one.

    gunicorn builds every request's access atoms and log record whenever a logconfig_dict is set,
    even with no access handler to write them: 2-3% of a download's CPU, measured with py-spy.
    """

    def access(self, resp, req, environ, request_time):  # noqa: ANN001, ANN201 - gunicorn's signature
        """The access line, if there is an access log."""
        if self.cfg.accesslog:
            super().access(resp, req, environ, request_time)


logger_class = Logger
# gunicorn 25+ opens a control socket at one fixed path per user; several instances on one host
# (the lab, a scaled deployment) would take it from each other. Nothing here uses it.
control_socket_disable = True


def on_starting(server):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """Before any worker forks: a clean metrics folder; on embedded defaults (no REDIS_URL), the embedded Redis."""
    # prometheus-client's multiprocess mode: every worker writes its counters here, a scrape sums them.
    # Set before the workers import prometheus_client (they do, after the fork).
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="coupon-rush-metrics-")
        os.environ["COUPON_RUSH_OWN_METRICS_DIR"] = "1"  # on_exit removes it

    from app import embedded

    if embedded.wanted():
        embedded.ensure_server(embedded.instance_folder())


def post_worker_init(worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """In each worker, after its fork: load the revocation view before the first request (app/revocation_view.py)."""
    from app import revocation_view

    revocation_view.start(worker.wsgi)


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """A worker is gone: drop its live gauges from the metrics folder (its counters stay counted)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """Remove the metrics folder this master made for itself."""
    if os.environ.pop("COUPON_RUSH_OWN_METRICS_DIR", None):
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)

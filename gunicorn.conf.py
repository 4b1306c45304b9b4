"""gunicorn settings for the API: ``gunicorn -c gunicorn.conf.py wsgi:app``.

gthread workers hold many keep-alive connections each and serve them from a thread pool, so
1,600 concurrent clients queue fairly on two cores (sync workers cannot keep a connection
open; gevent measured unfair here: a fast median with a tail of seconds). Every value can be
overridden from the environment.
"""

import multiprocessing
import os

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
# gunicorn 25+ opens a control socket at one fixed path per user; several instances on one host
# (the lab, a scaled deployment) would take it from each other. Nothing here uses it.
control_socket_disable = True


def on_starting(server):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """On embedded defaults (no REDIS_URL), start the embedded Redis before any worker needs it."""
    from app import embedded

    if embedded.wanted():
        embedded.ensure_server(embedded.instance_folder())

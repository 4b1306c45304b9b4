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
workers = int(os.environ.get("WEB_WORKERS", multiprocessing.cpu_count()))
threads = int(os.environ.get("WEB_THREADS", "32"))
# Connections one worker keeps open: workers x this must exceed the expected clients.
worker_connections = int(os.environ.get("WEB_CONNECTIONS", "1000"))
backlog = 2048
keepalive = 75
timeout = 30
graceful_timeout = 10
accesslog = os.environ.get("ACCESS_LOG") or None

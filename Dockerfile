# syntax=docker/dockerfile:1
#
# coupon-rush image: one image for every process of the service.
#
# Build and run with Compose (see docker-compose.yml):
#   export JWT_SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
#   docker compose up -d --build --scale api=4 --scale worker=2
#
# Or build and run the image by hand:
#   docker build -t coupon-rush .
#   docker run --rm -p 8000:8000 -e APP_ENV=production -e JWT_SECRET_KEY=... \
#     -e DATABASE_URL=mysql+pymysql://app:app@mariadb:3306/coupons -e REDIS_URL=redis://redis:6379/0 \
#     coupon-rush                                       # web (the default CMD)
#   docker run ... coupon-rush python -m jobs.worker     # RQ worker
#   docker run ... coupon-rush python -m jobs.scheduler  # scheduler (run exactly one)
#   docker run ... coupon-rush flask --app wsgi db upgrade   # schema migration, before web
#
# Needs BuildKit (the default builder since Docker 23) for the RUN --mount below.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build stage: compile every requirement into a wheel -------------------
# Some requirements may build from source when no wheel fits, so the compiler lives
# here only, never in the runtime image.
FROM ${PYTHON_IMAGE} AS wheels

# hadolint ignore=DL3008  # build-only stage: take Debian's current (security-patched) toolchain
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
# The service alone, at the versions the suite ran on: no lab, no embedded Redis, no test tools.
COPY requirements.lock .
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.lock

# ---- runtime stage ----------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000 \
    INSTANCE_PATH=/app/instance

# An unprivileged user with a fixed uid/gid; it owns nothing but the instance folder.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app

WORKDIR /app

# Install from the wheels only (no index, no compiler); the wheels are bind-mounted
# from the build stage so they never become a layer of this image.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    --mount=type=bind,source=requirements.lock,target=/tmp/requirements.lock \
    pip install --no-cache-dir --no-index --find-links=/wheels -r /tmp/requirements.lock

# The code stays owned by root (read-only to the app user). The app creates its
# Flask instance folder at start (/app/instance), so that one is made writable.
COPY . .
RUN mkdir -p /app/instance && chown app:app /app/instance

USER 10001:10001

EXPOSE 8000

# The web process; gunicorn.conf.py binds 0.0.0.0:$PORT.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]

# syntax=docker/dockerfile:1
# dbsize image: the API by default (`dbsize serve --host 0.0.0.0` on port 8000); the worker is
# `docker run IMAGE dbsize worker`, migrations `docker run IMAGE dbsize migrate` (they ship inside
# the package, under dbsize/migrations).
ARG PYTHON_VERSION=3.11

# --- build: the dbsize wheel plus a wheel for every dependency -----------------------------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --wheel-dir /wheels .

# --- runtime: slim, no compilers, non-root -------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DBSIZE_LOG_FORMAT=json
RUN groupadd --system --gid 10001 dbsize \
    && useradd --system --uid 10001 --gid dbsize --home-dir /app --shell /usr/sbin/nologin dbsize
# Only the wheels built above (no index), mounted rather than copied so they add no layer.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels dbsize
WORKDIR /app
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8000
# Readiness of the service behind the API: PostgreSQL and Redis answer and a worker heartbeated
# within the job lease (/readyz is 503 otherwise, so the container shows unhealthy when jobs
# would not run). A worker container overrides it with `dbsize worker --check` (compose does;
# with plain docker: `docker run --health-cmd "dbsize worker --check" IMAGE dbsize worker`).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
CMD ["dbsize", "serve", "--host", "0.0.0.0", "--port", "8000"]

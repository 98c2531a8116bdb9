# syntax=docker/dockerfile:1
#
# The monitor daemon: a small, non-root image whose entrypoint is `monitor run`.
#
#   docker build -t monitor:0.1.0 .
#   docker run --rm -p 9464:9464 monitor:0.1.0                      # shipped default config
#   docker run --rm -e MONITOR_SYSTEM=echo_ai -e ... monitor:0.1.0 run -c /etc/monitor/sidecar.yaml
#
# The base image is pinned by its full version tag. Pin the digest as well once it can be
# resolved where you build (`docker buildx imagetools inspect python:3.11.14-slim-bookworm`),
# as `FROM python:3.11.14-slim-bookworm@sha256:<digest>`, in both stages.

# --- build: resolve the locked dependencies into a virtualenv ---------------------------
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/monitor
WORKDIR /src

# Every package exactly as locked and hash-checked. The lock also holds the test extras
# (pytest, mypy, ...); they are removed again below, after the project is installed.
COPY requirements.lock ./
RUN /opt/monitor/bin/pip install --require-hashes -r requirements.lock

# The project itself, without resolving anything further.
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN /opt/monitor/bin/pip install --no-deps . \
 && /opt/monitor/bin/pip uninstall -y \
        pytest pytest-asyncio pytest-timeout iniconfig pluggy packaging \
        hypothesis sortedcontainers \
        respx trustme \
        mypy mypy-extensions pathspec librt ast-serialize types-PyYAML google-re2-stubs \
        import-linter grimp click \
        moto responses requests charset-normalizer xmltodict py-partiql-parser \
        flask flask-cors werkzeug jinja2 markupsafe itsdangerous blinker \
        aiobotocore aioitertools wrapt \
 && /opt/monitor/bin/pip check \
 && /opt/monitor/bin/monitor --version \
 && /opt/monitor/bin/pip uninstall -y pip setuptools

# --- runtime -----------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm

LABEL org.opencontainers.image.title="monitor" \
      org.opencontainers.image.description="Health-monitoring and alerting daemon: probes, rules, Prometheus metrics, notifications" \
      org.opencontainers.image.licenses="Apache-2.0"

# The default config's state path (sqlite:///state/monitor.db) is relative; MONITOR_STATE
# overrides it with the state directory, the one writable place in the image.
ENV PATH=/opt/monitor/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MONITOR_CONFIG=/etc/monitor/monitor.yaml \
    MONITOR_LISTEN=0.0.0.0:9464 \
    MONITOR_STATE=sqlite:////var/lib/monitor/monitor.db \
    MONITOR_LOG_FORMAT=json

RUN groupadd --system --gid 10001 monitor \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/monitor --no-create-home \
        --shell /usr/sbin/nologin monitor \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/monitor

COPY --from=build /opt/monitor /opt/monitor
COPY monitor.yaml /etc/monitor/monitor.yaml
COPY checks/ /etc/monitor/checks/
COPY alert_rules/ /etc/monitor/alert_rules/
COPY deploy/monitor.sidecar.yaml /etc/monitor/sidecar.yaml

# Declared so that ECS Fargate bind mounts at this path start with this directory's owner
# (10001) instead of root:0755; Kubernetes mounts an emptyDir here (deploy/kubernetes).
VOLUME ["/var/lib/monitor"]
WORKDIR /var/lib/monitor
USER 10001:10001

EXPOSE 9464
STOPSIGNAL SIGTERM
# Liveness: /healthz answers 200 while the scheduler loop runs. Python, not curl (not in
# the slim image); the port follows MONITOR_LISTEN.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('MONITOR_LISTEN', ':9464').rpartition(':')[2]; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["monitor"]
CMD ["run"]

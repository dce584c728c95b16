# syntax=docker/dockerfile:1
#
# egress: outbound HTTP proxy.  Two stages:
#   builder  installs the package and its dependencies into /opt/venv (wheels only;
#            every dependency publishes manylinux wheels for CPython 3.11, so no compiler)
#   runtime  the same pinned slim base, the venv copied in, nothing else: no compiler,
#            no pip cache, no source tree; runs as UID 10001.
#
# Config and contracts are mounted, not baked in:
#   /etc/egress/egress.yaml     (EGRESS_CONFIG; its contracts_dir: contracts)
#   /etc/egress/contracts/      (contract files)
#
#   docker build -t egress:dev .
#   docker run --rm -p 8080:8080 -p 9090:9090 \
#     -v "$PWD/deploy/k8s/base/egress.yaml:/etc/egress/egress.yaml:ro" \
#     -v "$PWD/deploy/k8s/base/contracts:/etc/egress/contracts:ro" \
#     -e PAYMENTS_TOKEN=... egress:dev
#
# Both stages MUST use the same base (the venv links to its interpreter: /usr/local/bin/python3
# on the python image, /usr/bin/python3 on a Debian-made base; scripts/image builds on one).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# pip's config for this stage (scripts/image mounts one naming the CA bundle the host trusts)
ARG PIP_CONFIG_FILE=/dev/null
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ONLY_BINARY=:all: \
    PIP_NO_BINARY=egress
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY egress/ egress/
# --only-binary for dependencies: a dependency without a wheel fails the build here
# instead of silently pulling a compiler in.  egress itself is built from source.
RUN /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/egress --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
ARG EGRESS_UID=10001
LABEL org.opencontainers.image.title="egress" \
      org.opencontainers.image.description="Outbound HTTP proxy: strips internal tokens, injects partner credentials, validates third-party responses against contracts" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid "${EGRESS_UID}" egress \
    && useradd --system --uid "${EGRESS_UID}" --gid egress --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin egress \
    && mkdir -p /etc/egress/contracts
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EGRESS_CONFIG=/etc/egress/egress.yaml \
    EGRESS_HEALTHCHECK_URL=http://127.0.0.1:9090/healthz
WORKDIR /etc/egress
USER 10001:10001
EXPOSE 8080 9090
# The slim image has no curl: probe the admin port with the interpreter.  127.0.0.1 is
# right whether admin_listen is 127.0.0.1:9090 or 0.0.0.0:9090 (the check runs inside
# the container).  Kubernetes ignores HEALTHCHECK and uses the Deployment's probes.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['EGRESS_HEALTHCHECK_URL'], timeout=2)"]
# Exec form: egress is PID 1 and receives SIGTERM (drain) and SIGHUP (reload) itself.
# Workers: one per CPU the container may use (`docker run --cpus 2` gives two; the cgroup v2
# cpu.max quota caps the CPU affinity); arguments after the image override it: `--workers 1`.
ENTRYPOINT ["egress", "serve"]

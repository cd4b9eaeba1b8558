# syntax=docker/dockerfile:1
# The failover coordinator as a container: `docker build -t failover .`
# Run it with the policy mounted read-only and the secrets the policy names in the environment:
#   docker run -v "$PWD/policy.yaml:/etc/failover/policy.yaml:ro" -v failover-state:/var/lib/failover \
#     -e FAILOVER_OBSERVER=us-east-1 -e FAILOVER_API_TOKEN -p 8443:8443 -p 8877:8877 failover
# See docs/deploy.md (and terraform/) for ECS Fargate and GCE.

ARG PYTHON_IMAGE=python:3.11-slim

# -- build: a virtual environment with the package and the `speed` extra (uvloop) ------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/failover
WORKDIR /src
COPY pyproject.toml README.md ./
COPY failover ./failover
RUN /opt/failover/bin/pip install --upgrade pip \
 && /opt/failover/bin/pip install ".[speed]"

# -- runtime: the same base, the virtual environment, a non-root user ------------------------
FROM ${PYTHON_IMAGE}

# A fixed uid/gid so volumes and host directories can be prepared for it (terraform/gcp does).
RUN groupadd --system --gid 10001 failover \
 && useradd --system --uid 10001 --gid failover --home-dir /var/lib/failover \
      --no-create-home --shell /usr/sbin/nologin failover \
 && mkdir -p /etc/failover /var/lib/failover \
 && chown failover:failover /etc/failover /var/lib/failover

COPY --from=build /opt/failover /opt/failover

ENV PATH=/opt/failover/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FAILOVER_POLICY=/etc/failover/policy.yaml \
    FAILOVER_HEALTHCHECK_URL=http://127.0.0.1:8877/healthz

USER failover
WORKDIR /var/lib/failover
VOLUME ["/var/lib/failover"]

# 8877: the admin API (api.listen; bind it to 0.0.0.0 in the policy to reach it from outside)
# 8443: the embedded proxy (proxy.listen)
EXPOSE 8877 8443

# The admin API's liveness endpoint; no curl in the image, Python's urllib does it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['FAILOVER_HEALTHCHECK_URL'], timeout=4)"]

ENTRYPOINT ["failover"]
CMD ["run"]

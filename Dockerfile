# The failover coordinator as a container, on Debian bookworm-slim with Debian's Python 3.11.
#
# Packages come in as wheels built beforehand and copied in (the way a company mirror or an
# air-gapped build does it): the build itself reaches no Python index, only the Debian mirror
# for python3. Build the wheels on Linux with Python 3.11 (Debian bookworm, like the image):
#   pip wheel --wheel-dir dist/wheels '.[speed]'
#   docker build -t failover .            # or: buildah bud --isolation chroot -t failover .
# Run it with the policy mounted read-only and the secrets the policy names in the environment:
#   docker run -v "$PWD/policy.yaml:/etc/failover/policy.yaml:ro" -v failover-state:/var/lib/failover \
#     -e FAILOVER_OBSERVER=us-east-1 -e FAILOVER_API_TOKEN -p 8443:8443 -p 8877:8877 failover
# See docs/deploy.md (and terraform/, deploy/) for ECS Fargate, GCE and Kubernetes.

ARG BASE_IMAGE=debian:bookworm-slim

# -- build: a virtual environment with the package and the `speed` extra (uvloop) ------------
FROM ${BASE_IMAGE} AS build

# Debian's python3 follows the stable point releases; pinning its exact version would break the
# build at the next one (the base image is what pins the release).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

COPY dist/wheels/ /wheels/
# --no-index: only the copied wheels, never a network index. What keeps the image under 200 MB
# (figures in docs/deploy.md): pip and setuptools install, they do not run; the extension modules'
# debug symbols go (uvloop's alone are 10 MB); botocore keeps the API models of the services
# failover calls (AWS_SERVICES: the adapters' and the credential providers'), not all 400 (24 MB);
# bytecode is kept for failover's own modules only.
ARG AWS_SERVICES="route53 ec2 sts sso sso-oidc"
RUN python3 -m venv /opt/failover \
 && /opt/failover/bin/pip install --no-cache-dir --no-index --find-links /wheels 'failover[speed]' \
 && /opt/failover/bin/pip uninstall --yes pip setuptools \
 && find /opt/failover -name '*.so*' -type f -exec strip --strip-unneeded {} + \
 && models=/opt/failover/lib/python3.11/site-packages/botocore/data \
 && mkdir /tmp/keep && for service in $AWS_SERVICES; do mv "$models/$service" /tmp/keep/; done \
 && find "$models" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} + \
 && mv /tmp/keep/* "$models/" && rmdir /tmp/keep \
 && find /opt/failover -depth -name __pycache__ -type d -exec rm -rf {} + \
 && /opt/failover/bin/python -m compileall -q -j 0 /opt/failover/lib/python3.11/site-packages/failover

# -- runtime: the same base, Debian's python3, the virtual environment, a non-root user ------
FROM ${BASE_IMAGE}

# ca-certificates: TLS to webhooks and providers through Python's ssl (aiohttp) trusts the system store.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log

# A fixed uid/gid so volumes and host directories can be prepared for it (terraform/gcp does).
RUN groupadd --system --gid 10001 failover \
 && useradd --system --uid 10001 --gid failover --home-dir /var/lib/failover \
      --no-create-home --shell /usr/sbin/nologin failover \
 && mkdir -p /etc/failover /var/lib/failover \
 && chown failover:failover /etc/failover /var/lib/failover

COPY --from=build /opt/failover /opt/failover

# PYTHONDONTWRITEBYTECODE: the non-root user cannot write beside the packages anyway (and the
# root filesystem may be read-only); only failover's own modules come precompiled.
ENV PATH=/opt/failover/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FAILOVER_POLICY=/etc/failover/policy.yaml \
    FAILOVER_HEALTHCHECK_URL=http://127.0.0.1:8877/healthz

USER 10001:10001
WORKDIR /var/lib/failover
VOLUME ["/var/lib/failover"]

# 8877: the admin API (api.listen; bind it to 0.0.0.0 in the policy to reach it from outside)
# 8443: the embedded proxy (proxy.listen)
EXPOSE 8877 8443

# The admin API's liveness endpoint; no curl in the image, Python's urllib does it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['FAILOVER_HEALTHCHECK_URL'], timeout=4)"]

# SIGTERM (docker stop, Kubernetes, ECS) stops the daemon cleanly: exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["failover"]
CMD ["run"]

# prober: browser-driven SLA checks exported as Prometheus metrics.
#
# Base: Debian's own slim image and Debian's python3 (3.11), so that every byte of the
# runtime (Python, Chromium, their libraries) comes from the Debian archive and gets
# its security fixes from bookworm-security, and so that CI can stand in for the base
# with a tree it bootstraps from that same archive (`./dev.sh image`, README "Image").
#
# Browser: Debian's `chromium` package, driven by Playwright through
# PROBER_BROWSER_PATH, not the browser build Playwright downloads. It is deliberately
# not pinned to an exact version: Debian drops the previous one from the archive with
# every security update, so an exact pin stops building within weeks. The build
# installs what the archive offers and records the exact versions it got in
# /opt/prober/versions.txt (and prober_build_info reports the browser at runtime).
# Python dependencies are pinned exactly (deploy/docker/requirements.txt); PyPI keeps
# old releases. `python deploy/tools/bump_pins.py` refreshes every pin.
ARG BASE_IMAGE=debian:12.15-slim

FROM ${BASE_IMAGE} AS build
# Only for builders behind a TLS-inspecting proxy: a CA bundle they mount for the build
# (./dev.sh image passes the host's). Build stage only; nothing of it reaches the image.
ARG PIP_CERT
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY deploy/docker/requirements.txt /tmp/requirements.txt
# A venv without pip or setuptools inside it: the image pip installs into it from outside.
RUN python3 -m venv --without-pip /opt/prober \
 && pip --python /opt/prober/bin/python install --no-cache-dir --no-deps -r /tmp/requirements.txt
COPY pyproject.toml README.md ./
COPY prober ./prober
RUN pip --python /opt/prober/bin/python install --no-cache-dir --no-deps . \
 && pip --python /opt/prober/bin/python check

FROM ${BASE_IMAGE}
# upgrade: the base's own packages get today's security fixes too, whatever its age.
# fonts-liberation gives failure screenshots readable text; tini is PID 1 and reaps
# the browsers' zombies; chromium pulls the chromium-common of its exact version;
# Playwright's bundled node (its driver) needs libatomic1, which nothing else pulls in.
# libnss3-tools: certutil, which builds each worker's NSS database for PROBER_CA_FILE.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get upgrade -y \
 && apt-get install -y --no-install-recommends python3 libatomic1 chromium fonts-liberation tini libnss3-tools \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt/* /var/log/dpkg.log

RUN groupadd --system --gid 10001 prober \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/prober --create-home \
      --shell /usr/sbin/nologin prober

COPY --from=build /opt/prober /opt/prober

# What this build resolved, for `cat /opt/prober/versions.txt` and for rebuilding it.
RUN { echo "# prober image, built $(date -u +%Y-%m-%dT%H:%M:%SZ)"; \
      dpkg-query -W -f '${Package}=${Version}\n' base-files python3.11 chromium \
        chromium-common fonts-liberation libatomic1 tini; \
      /opt/prober/bin/python -c 'import importlib.metadata as m; \
[print(f"{d.name}=={d.version}") for d in sorted(m.distributions(), key=lambda d: d.name.lower())]'; \
    } > /opt/prober/versions.txt

ENV PATH=/opt/prober/bin:${PATH} \
    HOME=/home/prober \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PROBER_BROWSER_PATH=/usr/bin/chromium \
    PROBER_LISTEN=0.0.0.0:8080

USER 10001:10001
WORKDIR /home/prober
EXPOSE 8080
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz (deploy/k8s/deployment.yaml).
ENTRYPOINT ["/usr/bin/tini", "--"]
# Listens on $PROBER_LISTEN (above): `docker run -e PROBER_LISTEN=... IMAGE` moves it.
CMD ["prober", "demo"]

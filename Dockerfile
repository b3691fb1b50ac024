# prober: browser-driven SLA checks exported as Prometheus metrics.
#
# Browser: Debian's own `chromium` package, driven by Playwright through
# PROBER_BROWSER_PATH, not the browser build Playwright downloads. Debian ships
# security fixes for it in bookworm-security, it installs from the same apt archive as
# the rest of the image, and it is the exact browser our CI runs the test-suite with
# (the CI machine is Debian bookworm too). See README.md ("Image").
#
# Every version below is pinned and checked by tests/deploy/test_dockerfile.py on a Debian
# bookworm machine: bump them together and run that test.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY deploy/docker/requirements.txt /tmp/requirements.txt
# A venv without pip or setuptools inside it: the image pip installs into it from outside.
RUN python -m venv --without-pip /opt/prober \
 && pip --python /opt/prober/bin/python install --no-cache-dir --no-deps -r /tmp/requirements.txt
COPY pyproject.toml README.md ./
COPY prober ./prober
RUN pip --python /opt/prober/bin/python install --no-cache-dir --no-deps . \
 && pip --python /opt/prober/bin/python check

FROM ${PYTHON_IMAGE}
ARG CHROMIUM_VERSION=156.0.8078.79-1~deb12u1
ARG TINI_VERSION=0.19.0-1+b3
ARG FONTS_LIBERATION_VERSION=1:1.07.4-11
# chromium-common must match chromium exactly; fonts-liberation gives failure
# screenshots readable text; tini is PID 1 and reaps the browsers' zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      chromium=${CHROMIUM_VERSION} \
      chromium-common=${CHROMIUM_VERSION} \
      fonts-liberation=${FONTS_LIBERATION_VERSION} \
      tini=${TINI_VERSION} \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt/* /var/log/dpkg.log

RUN groupadd --system --gid 10001 prober \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/prober --create-home \
      --shell /usr/sbin/nologin prober

COPY --from=build /opt/prober /opt/prober

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
CMD ["prober", "demo", "--listen", "0.0.0.0:8080"]

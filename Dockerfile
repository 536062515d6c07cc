# syntax=docker/dockerfile:1
# `xp serve` on the CPU: the warp engine, the audit log, C2PA and the watermark. The plain install needs no torch
# (that is the `diffusion` extra, for a GPU image). docs/server.md ("Containers") says how to run it.
#
#   docker build -t xp-sdk .
#   docker run --rm -v xp-home:/var/lib/xp xp-sdk init            # once: prints the admin API key
#   docker run -p 8000:8000 -v xp-home:/var/lib/xp xp-sdk         # xp serve on 0.0.0.0:8000

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY xp_sdk ./xp_sdk
COPY audit ./audit
COPY policy ./policy
COPY watermark ./watermark
RUN python -m venv /opt/xp && /opt/xp/bin/pip install .

FROM ${PYTHON_IMAGE}
# OpenCV (the opencv-contrib-python that MediaPipe requires) loads libGL and GLib even when nothing is shown.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/xp --create-home --shell /usr/sbin/nologin xp
COPY --from=build /opt/xp /opt/xp
# XP_HOME holds the signing keys, the audit log key and (without XP_DATABASE_URL) the SQLite log: keep it on a
# volume, readable by the xp user alone.
ENV PATH=/opt/xp/bin:$PATH \
    XP_HOME=/var/lib/xp/home \
    PYTHONUNBUFFERED=1
USER xp
WORKDIR /var/lib/xp
VOLUME ["/var/lib/xp"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["xp"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

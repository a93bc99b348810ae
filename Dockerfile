# riskmon: one image for every riskmon process (ingest, worker, simulate, replay) of
# docker-compose.yml. Build: docker build -t riskmon .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/riskmon
COPY . .
RUN pip install . \
    && useradd --system --create-home --home-dir /home/riskmon --shell /usr/sbin/nologin riskmon \
    && mkdir -p /data \
    && chown riskmon:riskmon /data

USER riskmon
# The metrics endpoint (RISKMON_METRICS_PORT); bind it to 0.0.0.0 in containers
# (RISKMON_METRICS_HOST), as docker-compose.yml does.
EXPOSE 9464
ENTRYPOINT []
CMD ["riskmon", "--help"]

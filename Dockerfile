# The anomstream worker image: `docker build -t anomstream .`; `docker run anomstream run|demo|create-topics`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Only what the wheel needs (see .dockerignore): metadata, readme, the package.
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install . \
    && useradd --system --uid 10001 --no-create-home anomstream

USER anomstream
ENV ANOMSTREAM_LOG_FORMAT=json \
    ANOMSTREAM_METRICS__HOST=0.0.0.0 \
    ANOMSTREAM_METRICS__PORT=9108
EXPOSE 9108

# Liveness of `anomstream run`: /healthz answers 200 while the consume loop turns (503 when stuck).
# Containers running other subcommands (demo, create-topics) disable it in docker-compose.yml.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ANOMSTREAM_METRICS__PORT', '9108'), timeout=2)"

ENTRYPOINT ["anomstream"]
CMD ["run"]

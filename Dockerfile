# preflab image: one image for web (granian + whitenoise), the CPU worker and, built with
# PREFLAB_EXTRAS=vllm, the GPU worker. The RUN steps below are the commands tests/production/
# test_deploy.py runs (it reads them from this file): pip install -e, collectstatic, check --deploy.
FROM python:3.11-slim-bookworm

ARG PREFLAB_EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PREFLAB_VAR_DIR=/app/var \
    STATIC_ROOT=/app/staticfiles \
    STATICFILES_STORAGE=whitenoise.storage.CompressedManifestStaticFilesStorage

RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 preflab

WORKDIR /app
COPY pyproject.toml README.md manage.py ./
COPY preflab ./preflab
COPY annotation ./annotation
COPY generation ./generation
COPY judging ./judging
COPY templates ./templates
COPY static ./static

RUN pip install -e ".${PREFLAB_EXTRAS:+[$PREFLAB_EXTRAS]}"
# The project's modules compiled once here: PYTHONDONTWRITEBYTECODE keeps processes from writing bytecode,
# so without this every process start (web and job workers, `manage.py judge`) compiled them all again
# (~0.3 s of CPU each time).
RUN python -m compileall -q preflab annotation generation judging

# Static files are collected at build time with throw-away production settings (no secret is baked
# into the image: the real SECRET_KEY comes from the environment at run time).
RUN DEBUG=false SECRET_KEY=build-only-not-a-secret-0123456789-abcdefghijklmnopqrstuvwxyz ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput
RUN DEBUG=false SECRET_KEY=build-only-not-a-secret-0123456789-abcdefghijklmnopqrstuvwxyz ALLOWED_HOSTS=localhost \
    SECURE_SSL_REDIRECT=true python manage.py check --deploy --fail-level WARNING

RUN mkdir -p /app/var && chown -R preflab:preflab /app/var
USER preflab
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1

# web: migrate, then serve (docker-compose.yml uses the same command).
CMD ["sh", "-c", "python manage.py migrate --noinput && exec granian --interface wsgi preflab.wsgi:application --host 0.0.0.0 --port 8000 --workers ${WEB_WORKERS:-4} --blocking-threads ${WEB_THREADS:-8} --no-ws --respawn-failed-workers --access-log"]

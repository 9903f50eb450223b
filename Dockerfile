# tierwise proxy image: the wheel inside a slim Python, run as a non-root user.
#   docker build -t tierwise:0.1.0 .
#   docker run -p 8080:8080 -e TIERWISE_API_KEYS=... -e ANTHROPIC_API_KEY=... tierwise:0.1.0
# The policy is the embedded default unless TIERWISE_POLICY names a file (mount one, e.g. the
# ConfigMap in deploy/k8s/ or deploy/policy.yaml in deploy/compose.yaml). See docs/deploy.md.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY router ./router
COPY classifiers ./classifiers
COPY policies ./policies
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 --user-group tierwise
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /home/tierwise
# listen on every interface inside the container; the spool keeps ledger writes Redis could not
# take (mount a volume there to keep them across restarts)
ENV TIERWISE_HOST=0.0.0.0 \
    TIERWISE_PORT=8080 \
    TIERWISE_SPOOL_DIR=/home/tierwise/spool \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TIERWISE_PORT', '8080') + '/healthz', timeout=2)"]
ENTRYPOINT ["tierwise"]
CMD ["serve"]

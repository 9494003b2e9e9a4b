# The exchange service image (docker-compose.yml builds it). Dependencies are pinned by
# constraints.txt; the source runs from /app, so the image matches a checkout.
FROM python:3.11-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    LISTEN_HOST=0.0.0.0

WORKDIR /app

# Dependencies first, in their own layer: only pyproject.toml/constraints.txt changes
# rebuild it. The empty package folders let pip resolve the project without its source.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir -p domain server projections clients \
    && pip install -c constraints.txt . \
    && pip uninstall -y exchange-core \
    && rm -rf domain server projections clients

# The engine's hot modules compiled with mypyc (compile_engine.py, `make compile`): the C
# compiler and mypy live in this stage only; the image takes build/compiled/ from it.
FROM base AS compile
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && pip install -c constraints.txt mypy "setuptools>=77"
COPY domain ./domain
COPY compile_engine.py ./
RUN python -m compile_engine

FROM base
COPY domain ./domain
COPY server ./server
COPY projections ./projections
COPY clients ./clients
COPY proto ./proto
COPY --from=compile /app/build/compiled ./build/compiled

RUN useradd --create-home --uid 10001 exchange
USER exchange

# gRPC (GRPC_PORT), HTTP and the web page (HTTP_PORT) and Prometheus metrics
# (METRICS_PORT); see server/settings.py. A container listens on every interface
# (LISTEN_HOST above): outside one, the default is 127.0.0.1.
EXPOSE 50051 8080 9464

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import grpc, os, sys; from grpc_health.v1 import health_pb2, health_pb2_grpc; \
channel = grpc.insecure_channel('127.0.0.1:' + os.environ.get('GRPC_PORT', '50051')); \
reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2); \
sys.exit(0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1)"

CMD ["python", "-m", "server"]

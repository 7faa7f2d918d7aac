# The fsclap image: the CLI, the flows, and the Prefect server/worker that run them
# (docker-compose.yml uses it for the server, the workers and one-shot commands).
#   CPU:  docker build -t fsclap:latest .
#   GPU:  docker build -t fsclap-gpu:latest --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 \
#                      --build-arg CONSTRAINTS= --build-arg EXTRAS=gpu .
#   Dask workers: add --build-arg EXTRAS=dask (prefect-dask + distributed), or EXTRAS=gpu,dask.
FROM python:3.11-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG CONSTRAINTS=constraints/cpu.txt
ARG EXTRAS=""
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg espeak-ng sox \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/fsclap
# Dependencies first (a layer that survives source edits): torch from the chosen index, then the
# project's requirements as pyproject.toml lists them.
COPY pyproject.toml ./
COPY constraints/ constraints/
RUN python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extras = [e for e in os.environ.get('EXTRAS', '').split(',') if e]; \
print('\n'.join(p['dependencies'] + [r for e in extras for r in p['optional-dependencies'][e]]))" > /tmp/requirements.txt
RUN pip install --no-cache-dir --extra-index-url "${TORCH_INDEX}" ${CONSTRAINTS:+-c $CONSTRAINTS} -r /tmp/requirements.txt
COPY . .
RUN pip install --no-cache-dir --no-deps -e ".${EXTRAS:+[$EXTRAS]}"
ENV FSCLAP_DATA_ROOT=/data FSCLAP_MODELS=/models HF_HUB_OFFLINE=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_LOGGING_EXTRA_LOGGERS=fsclap
VOLUME ["/data", "/models"]
# No entrypoint: the same image runs `fsclap ...`, `prefect server start`, `prefect worker start ...`.
CMD ["fsclap", "--help"]

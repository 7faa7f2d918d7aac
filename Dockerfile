# Worker image: the fsclap package with its system tools. GPU workers build with
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 --build-arg CONSTRAINTS= .
FROM python:3.11-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG CONSTRAINTS=constraints/cpu.txt
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg espeak-ng sox \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/fsclap
COPY . .
RUN pip install --no-cache-dir --extra-index-url "${TORCH_INDEX}" ${CONSTRAINTS:+-c $CONSTRAINTS} -e .
ENV FSCLAP_DATA_ROOT=/data FSCLAP_MODELS=/models HF_HUB_OFFLINE=1
VOLUME ["/data", "/models"]
ENTRYPOINT ["fsclap"]
CMD ["--help"]

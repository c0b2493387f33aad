# finsentry image: one image for every service (worker, scraper, push, trainer, CLI).
#
#   docker build -t finsentry:cpu .                      # default target: CPU
#   docker build -t finsentry:cuda --target cuda .       # NVIDIA GPUs (CUDA build of torch)
#
# Build arguments:
#   PYTHON_VERSION   base Python (slim Debian image)
#   TORCH_VERSION    torch version both variants install
#   TORCH_CPU_INDEX  wheel index of the CPU build of torch
#   TORCH_CUDA_INDEX wheel index of the CUDA build (its wheels carry the CUDA runtime, so the
#                    image needs no CUDA base; the host needs the NVIDIA driver and the
#                    NVIDIA container toolkit)
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
# dependency and changes least often, so source edits do not re-download it.
FROM python-base AS deps-cpu
ARG TORCH_VERSION=2.13.0
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_CPU_INDEX}" "torch==${TORCH_VERSION}"

FROM python-base AS deps-cuda
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA_INDEX=https://download.pytorch.org/whl/cu128
RUN pip install --index-url "${TORCH_CUDA_INDEX}" "torch==${TORCH_VERSION}"

# The package itself (non-editable), with its shipped model, dashboards and web assets.
FROM deps-cpu AS build-cpu
WORKDIR /src
COPY pyproject.toml setup.py README.md* ./
COPY finsentry ./finsentry
COPY streams ./streams
COPY models ./models
COPY training ./training
COPY dashboards ./dashboards
RUN pip install . && python -c "import finsentry.cli"

FROM deps-cuda AS build-cuda
WORKDIR /src
COPY pyproject.toml setup.py README.md* ./
COPY finsentry ./finsentry
COPY streams ./streams
COPY models ./models
COPY training ./training
COPY dashboards ./dashboards
RUN pip install . && python -c "import finsentry.cli"

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false
# libgomp: OpenMP for torch and onnxruntime on CPU. tini: signals reach the Python
# process, zombies are reaped (Faust shuts down cleanly on SIGTERM).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 tini ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin finsentry \
    && mkdir -p /var/lib/finsentry/data /var/lib/finsentry/registry /var/lib/finsentry/outbox \
                /var/lib/finsentry/seen /var/lib/finsentry/training /etc/finsentry \
    && chown -R finsentry:finsentry /var/lib/finsentry
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

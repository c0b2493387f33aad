"""Inference backends: one padded batch of token ids in, two logit arrays out.

- torch fp32 on the CPU: the reference every other backend is checked against;
- torch bf16 autocast on CPUs that compute bf16 natively (AVX512-BF16 / AMX);
- ONNX Runtime with block-wise int8 weights and int8 compute (exported once per model
  version and cached);
- torch on CUDA with bf16 (or fp16) autocast and pinned host memory, chosen when a GPU is
  present. It moves its own copy of the model to the GPU: the CPU backends share one module,
  which must stay where it is. No GPU is available to this project's CI: the CUDA path is
  guarded, and a test runs its host-side logic (own copy, dtype choice, pinned inputs) with
  the device pointed at the CPU.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

log = logging.getLogger("finsentry.models")

CUDA_DEVICE = "cuda"  # where the CUDA backend runs; a test without a GPU points it at "cpu"


class Backend(Protocol):
    name: str

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def cuda_available() -> bool:
    return torch.cuda.is_available()


class TorchBackend:
    def __init__(
        self,
        model: torch.nn.Module,
        dtype: str = "fp32",
        device: str = "cpu",
        pin_memory: bool | None = None,
        name: str | None = None,
    ):
        if device.startswith("cuda") and not cuda_available():
            raise RuntimeError("CUDA backend requested but no CUDA device is available")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.autocast_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
        default_name = "cuda" if self.device.type == "cuda" else ("torch" if dtype == "fp32" else f"torch-{dtype}")
        self.name = name or default_name
        self.pin = self.device.type == "cuda" if pin_memory is None else pin_memory

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))
        if self.pin:
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=self.pin)

    @torch.inference_mode()
    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids, mask = self._tensor(input_ids), self._tensor(attention_mask)
        with torch.autocast(
            self.device.type, dtype=self.autocast_dtype or torch.bfloat16, enabled=self.autocast_dtype is not None
        ):
            sentiment, topic = self.model(ids, mask)
        return sentiment.float().cpu().numpy(), topic.float().cpu().numpy()


def cuda_backend(model: torch.nn.Module) -> TorchBackend:
    """torch on the GPU with bf16 autocast where the GPU computes it (else fp16) and pinned
    host memory. It gets its own copy of `model`: moving the module the CPU backends share
    to the GPU would move it under them."""
    if not cuda_available():
        raise RuntimeError("CUDA backend requested but no CUDA device is available")
    dtype = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return TorchBackend(copy.deepcopy(model), dtype, CUDA_DEVICE, pin_memory=True, name="cuda")


class _LogitsOnly(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(input_ids, attention_mask)
        return logits


def export_onnx_int8(model: torch.nn.Module, directory: Path, block_size: int = 32) -> Path:
    """Export to ONNX and quantise the encoder's weights to int8; returns the quantised file.

    Block-wise int8 (MatMulNBits, 8 bits, blocks of 32, int8 compute): activations are
    quantised per block of 32 values instead of per tensor, which keeps BERT's activation
    outliers from flipping labels. Per-tensor dynamic quantisation was faster here but
    changed 2–5 % of labels; this keeps ≥ 99 % agreement with fp32 on both heads.
    """
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    directory.mkdir(parents=True, exist_ok=True)
    int8_path = directory / f"model.int8-b{block_size}.onnx"
    # Workers started together share the cache: each exports under a name of its own and the
    # last atomic rename wins, so none reads another's half-written file.
    fp32_path = directory / f"model.fp32.{os.getpid()}.onnx"
    if int8_path.exists():
        return int8_path
    ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    # The wrapper must be in eval mode too: the exporter puts the module it is given back in
    # the mode it found it, and `train(True)` on a fresh wrapper would reach `model`, leaving
    # the module the torch backends share with dropout switched on.
    wrapper = _LogitsOnly(model).eval()
    with torch.inference_mode():
        torch.onnx.export(
            wrapper,
            (ids, mask),
            str(fp32_path),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentiment", "topic"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={
                "input_ids": {0: "batch", 1: "seq"},
                "attention_mask": {0: "batch", 1: "seq"},
                "sentiment": {0: "batch"},
                "topic": {0: "batch"},
            },
        )
    config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True, accuracy_level=4, bits=8)
    quantizer = MatMulNBitsQuantizer(
        str(fp32_path), bits=8, block_size=block_size, is_symmetric=True, accuracy_level=4, algo_config=config
    )
    quantizer.process()
    tmp = int8_path.with_suffix(f".{os.getpid()}.tmp.onnx")
    quantizer.model.save_model_to_file(str(tmp), True)
    os.replace(tmp, int8_path)
    fp32_path.unlink(missing_ok=True)
    return int8_path


class OnnxBackend:
    name = "onnx"

    def __init__(self, path: Path, threads: int = 0, shrink_arena: bool = True):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle pool threads sleep instead of spinning: in a worker they would take the CPU
        # the event loop and the broker need (measured: no slower on its own here).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        # The arena keeps the largest buffers any batch shape needed: ~980 MB vs ~620 MB for
        # an engine with two streams after 3,000 texts when it is shrunk after each run
        # (about 9 % slower). Shrinking keeps a worker inside its memory budget.
        self.run_options = ort.RunOptions()
        if shrink_arena:
            self.run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sentiment, topic = self.session.run(
            ["sentiment", "topic"],
            {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)},
            self.run_options,
        )
        return sentiment, topic

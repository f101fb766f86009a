"""
Export tooling behind ``qwen-voice-export`` (runs on a PC; not needed on the robot).

Pipeline: Hugging Face model directory or hub id -> optimum ONNX export (opset 17,
``text-generation-with-past``) -> optional INT8/INT4 weight-only quantisation (MatMulNBits)
-> validation against transformers' logits -> optional TensorRT engine-cache prebuild.

Every module imports torch / transformers / optimum / onnxruntime inside the functions that
need them, so ``import qwen_voice_ros.llm.export`` is cheap and ``trt_prebuild`` works on a
robot that has onnxruntime but neither torch nor transformers.
"""
from __future__ import annotations


class ExportError(RuntimeError):
    """A step of the export failed for a reason the user can act on (message says which)."""

    exit_code = 1


class ModelNotFound(ExportError):
    """The model is neither a local directory nor fetchable from the hub."""

    exit_code = 2


class ValidationFailed(ExportError):
    """The exported graph's logits differ from transformers' by more than the tolerance."""

    exit_code = 3


class TensorRTUnavailable(ExportError):
    """The TensorRT execution provider is not available here (prebuild step only)."""

    exit_code = 4


class PackIntegrityError(ExportError):
    """A reassembled offline pack does not match its pinned sha256."""

    exit_code = 5

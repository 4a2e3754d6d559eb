"""The inference core's three network calls run by ONNX Runtime (docs/deployment.md).

    backend = OnnxBackend("onnx/", checkpoint="saves/imsfr.pth")   # graphs of scripts/export_onnx.py
    core = InferenceCore(backend, PRESETS["davis2017"], "cpu")

The memory bank, the sampler, the procedures and the aggregation stay the core's (PyTorch
tensors); only ``encode_key``, ``encode_value`` and ``segment`` go to ONNX Runtime sessions,
through NumPy arrays (float32; ``segment`` runs the segment graph once per ``MemoryRead``).
Execution providers: CUDA when the core's device is CUDA and the installed runtime has it,
else the CPU. The graphs are float32 or, exported with ``--quantize int8``, int8 (QDQ; the
manifest's ``quantization``); the same code runs both. Every setup problem (no manifest, a
field of the wrong type, graphs of another checkpoint, a missing, changed, unreadable or
unloadable graph) is an ``OnnxError`` with a one-line message naming the file.
"""
import json
import os

import numpy as np
import torch

from inference_core.onnx_export import FORMAT, GRAPH_FILES, MANIFEST, QUANTIZATIONS, file_sha256
from model.value_encoder import other_objects

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
NO_TOP_K = np.iinfo(np.int64).max  # top_k None: the whole memory by plain softmax


class OnnxError(ValueError):
    """ONNX graphs that cannot be used; the message (one line) says why."""


def _first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__


MAX_MANIFEST_BYTES = 1 << 20  # an export's manifest is a few KiB


def _kind(value):
    """What a JSON value is, for messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _is_sha256(value):
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def check_fields(path, manifest, hint):
    """The manifest's fields that the backend reads, with their types: an ``OnnxError`` naming
    the first that is missing or of the wrong type."""
    def wrong(field, want, value):
        raise OnnxError(f"{path}: field {field} must be {want}, not {_kind(value)} ({hint})")

    graphs = manifest.get("graphs")
    if not isinstance(graphs, dict) or not all(isinstance(graphs.get(g), dict) for g in GRAPH_FILES):
        raise OnnxError(f"{path}: does not list the graphs {', '.join(GRAPH_FILES)} ({hint})")
    for graph, filename in GRAPH_FILES.items():
        entry = graphs[graph]
        if entry.get("file") != filename:
            wrong(f"graphs.{graph}.file", f'"{filename}"', entry.get("file"))
        if not _is_sha256(entry.get("sha256")):
            wrong(f"graphs.{graph}.sha256", "a SHA-256 (64 hex digits)", entry.get("sha256"))
    opset = manifest.get("opset")
    if type(opset) is not int:
        wrong("opset", "a whole number", opset)
    checkpoint = manifest.get("checkpoint")
    if checkpoint is not None:
        if not isinstance(checkpoint, dict):
            wrong("checkpoint", 'null or an object with "file" and "sha256"', checkpoint)
        if not isinstance(checkpoint.get("file"), str):
            wrong("checkpoint.file", "a string (the checkpoint's file name)", checkpoint.get("file"))
        if not _is_sha256(checkpoint.get("sha256")):
            wrong("checkpoint.sha256", "a SHA-256 (64 hex digits)", checkpoint.get("sha256"))
    quantization = manifest.get("quantization")
    if quantization is not None:
        if not isinstance(quantization, dict):
            wrong("quantization", 'null (float32) or an object with "type" and "graphs"', quantization)
        if quantization.get("type") not in QUANTIZATIONS:
            wrong("quantization.type", " or ".join(f'"{q}"' for q in QUANTIZATIONS), quantization.get("type"))
        listed = quantization.get("graphs")
        if not isinstance(listed, list) or not listed or not all(g in GRAPH_FILES for g in listed):
            wrong("quantization.graphs", f"a list of graphs ({', '.join(GRAPH_FILES)})", listed)


def _sha256_of(path, what, hint):
    """SHA-256 of a file that must be a readable regular file (OnnxError naming it otherwise)."""
    if os.path.isdir(path):
        raise OnnxError(f"{path}: is a folder, not a {what} file")
    if not os.path.exists(path):
        raise OnnxError(f"{path}: {what} file not found" + (f" ({hint})" if hint else ""))
    if not os.path.isfile(path):
        raise OnnxError(f"{path}: not a regular file (a {what} must be a file)")
    try:
        return file_sha256(path)
    except OSError as error:
        raise OnnxError(f"{path}: cannot read the {what} file ({error.strerror or _first_line(error)})") from None


def read_manifest(folder, checkpoint=None):
    """The manifest of an export folder, checked: the format and field types, every graph file
    there with the SHA-256 it was written with and, given ``checkpoint`` (a path), the
    checkpoint's SHA-256."""
    folder = os.fspath(folder)
    path = os.path.join(folder, MANIFEST)
    hint = "write the graphs with: python scripts/export_onnx.py --model CHECKPOINT --output " + folder
    if not os.path.isdir(folder):
        raise OnnxError(f"--onnx {folder}: no such folder ({hint})")
    try:
        if os.path.isfile(path) and os.path.getsize(path) > MAX_MANIFEST_BYTES:
            raise OnnxError(f"{path}: {os.path.getsize(path)} bytes, not a manifest (at most "
                            f"{MAX_MANIFEST_BYTES} bytes)")
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise OnnxError(f"{path}: not found ({hint})") from None
    except (OSError, ValueError, RecursionError) as error:
        reason = getattr(error, "strerror", None) or _first_line(error)
        raise OnnxError(f"{path}: not a readable manifest ({reason})") from None
    if not isinstance(manifest, dict) or type(manifest.get("format")) is not int or manifest["format"] != FORMAT:
        raise OnnxError(f"{path}: not a manifest of format {FORMAT} ({hint})")
    check_fields(path, manifest, hint)
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
        digest = _sha256_of(checkpoint, "checkpoint", None)
        recorded = manifest["checkpoint"]
        if recorded is None or recorded["sha256"] != digest:
            source = "no checkpoint" if recorded is None else recorded["file"]
            raise OnnxError(f"{folder}: the graphs were exported from another checkpoint ({source}), not from "
                            f"--model {checkpoint} (SHA-256 differs); export them again: python "
                            f"scripts/export_onnx.py --model {checkpoint} --output {folder}")
    for graph, filename in GRAPH_FILES.items():
        graph_path = os.path.join(folder, filename)
        if _sha256_of(graph_path, "graph", hint) != manifest["graphs"][graph]["sha256"]:
            raise OnnxError(f"{graph_path}: not the graph {MANIFEST} lists (SHA-256 differs: changed, truncated "
                            f"or from another export; {hint})")
    return manifest


def precision_of(manifest):
    """"float32", or the quantisation and its graphs ("int8: key_encoder, segment")."""
    quantization = manifest.get("quantization")
    return "float32" if quantization is None else f"{quantization['type']}: {', '.join(quantization['graphs'])}"


def runtime():
    """The onnxruntime module (OnnxError when it is not installed)."""
    try:
        import onnxruntime
    except ImportError:
        raise OnnxError("onnxruntime is not installed (pip install onnxruntime)") from None
    return onnxruntime


def providers_for(device):
    """ONNX Runtime execution providers for a torch device: CUDA when asked for and installed."""
    onnxruntime = runtime()
    if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": torch.device(device).index or 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def session_options(threads=None, optimization="all"):
    """ONNX Runtime session options: intra-op threads (None: the runtime's default, one per
    physical core) and the graph optimisation level (``OPTIMIZATION_LEVELS``)."""
    onnxruntime = runtime()
    levels = dict(zip(OPTIMIZATION_LEVELS, (onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
                                            onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                            onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                            onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL)))
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = levels[optimization]
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: a failed load raises with its own message
    return options


class OnnxBackend:
    network = None  # no PyTorch network behind this backend

    def __init__(self, folder, device="cpu", checkpoint=None, threads=None, optimization="all"):
        """``folder``: an export of scripts/export_onnx.py; ``checkpoint``: the weights it must
        come from (None: not checked); ``device``: where the core's tensors live (CUDA runs the
        graphs with CUDA's provider when installed)."""
        onnxruntime = runtime()
        self.manifest = read_manifest(folder, checkpoint)
        self.precision = precision_of(self.manifest)
        self.recorded = None  # {graph: [feed]}: every graph's inputs are kept here (calibration)
        self.device = torch.device(device)
        self.providers = providers_for(self.device)
        options = session_options(threads, optimization)
        self.sessions, self.inputs = {}, {}
        for graph, filename in GRAPH_FILES.items():
            path = os.path.join(os.fspath(folder), filename)
            try:
                session = onnxruntime.InferenceSession(path, options, providers=self.providers)
            except Exception as error:  # the runtime's own exception types (InvalidProtobuf, Fail, ...)
                raise OnnxError(f"{path}: ONNX Runtime cannot load this graph ({_first_line(error)})") from None
            self.sessions[graph] = session
            self.inputs[graph] = [i.name for i in session.get_inputs()]

    def _run(self, graph, feed):
        arrays = {name: np.ascontiguousarray(feed[name].detach().to("cpu", torch.float32).numpy())
                  if isinstance(feed[name], torch.Tensor) else feed[name] for name in self.inputs[graph]}
        if self.recorded is not None:
            self.recorded[graph].append(arrays)
        return [torch.from_numpy(out).to(self.device) for out in self.sessions[graph].run(None, arrays)]

    def encode_key(self, frame):
        """frame (1, 3, H, W), H and W multiples of 16 -> key (1, 512, h, w), f16, f8, f4."""
        return tuple(self._run("key_encoder", dict(frame=frame)))

    def encode_value(self, frame, key_f16, masks, next_frame, others=None):
        """Values and positional values (1, K, 512, h, w) of K objects (``TorchBackend.encode_value``)."""
        others = other_objects(masks) if others is None else others
        return tuple(self._run("value_encoder", dict(frame=frame, next_frame=next_frame, f16=key_f16, masks=masks,
                                                     others=others)))

    def segment(self, key, f8, f4, reads, top_k):
        """Probabilities (N, H, W) of the objects of ``reads`` (``MemoryRead``s, in order)."""
        k = np.array(NO_TOP_K if top_k is None else int(top_k), dtype=np.int64)
        if k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        probabilities = []
        for read in reads:
            m = read.memory
            probabilities += self._run("segment", dict(
                key=key, f8=f8, f4=f4, long_term_key=m.long_term_key, long_term_value=m.long_term_value,
                first_key=m.first_key, first_value=m.first_value, previous_key=m.previous_key,
                previous_value=m.previous_value, top_k=k))
        return torch.cat(probabilities, dim=0)


def onnx_backend(folder, checkpoint, config, device, backend="onnxruntime"):
    """(OnnxBackend, config, device) for the eval scripts' ``--backend onnxruntime --onnx DIR``:
    the graphs checked against ``checkpoint``; CUDA only where the runtime has it; ``config`` in fp32 (build.onnx_config)."""
    if backend != "onnxruntime":
        raise OnnxError(f"--onnx {folder} goes with --backend onnxruntime")
    if folder is None:
        raise OnnxError("--backend onnxruntime needs --onnx DIR (the graphs of scripts/export_onnx.py)")
    device = torch.device(device)
    if device.type == "cuda" and providers_for(device) == ["CPUExecutionProvider"]:
        print("note: the installed onnxruntime has no CUDA execution provider; running on the CPU")
        device = torch.device("cpu")
    if config.precision != "fp32":  # build.onnx_config resolves the flag first; the graphs run as exported
        raise ValueError(f"--backend onnxruntime runs its graphs as exported, not in {config.precision}")
    backend = OnnxBackend(folder, device, checkpoint=checkpoint)
    if backend.precision != "float32":
        print(f"note: {os.path.join(os.fspath(folder), MANIFEST)}: quantised graphs ({backend.precision})")
    return backend, config, device

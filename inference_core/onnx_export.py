"""ONNX export of the three network calls of the inference core (docs/deployment.md).

    manifest = export_onnx(network, "onnx/", checkpoint="saves/imsfr.pth")

writes ``key_encoder.onnx``, ``value_encoder.onnx`` and ``segment.onnx`` (``_specs``: what
each takes and returns) and ``manifest.json`` (opset, names and shapes, the checkpoint's and
the graphs' SHA-256, the project version). Exporter: ``torch.onnx.export`` with
``dynamo=True`` (torch.export; the installed torch's recommended and default one), the opset
it recommends unless asked. Batch is 1 (the core runs one frame at a time); frame height and
width (multiples of 16), objects and memory frames are dynamic.

``quantize_graph`` turns one graph into int8 (ONNX Runtime's static quantisation, QDQ),
calibrated on recorded inputs of the float32 graph (scripts/export_onnx.py --quantize int8).

The segment graph is the PyTorch backend's ``segment`` for one ``MemoryRead``: the three
readouts, the gate fusion and the decoder. Its long-term readout is the backend's top-k
readout (inference_core/memory_reader.py: the ``top_k`` largest affinities of each query pixel
and a gather of their values; ``top_k`` a graph input, at least the memory size a plain
softmax over the whole memory).
"""
import contextlib
import copy
import hashlib
import json
import os
import time
import warnings

import torch
import torch.nn as nn
from torch.export import Dim

from inference_core.backend import TorchBackend
from inference_core.memory_bank import MemoryRead
from inference_core.memory_reader import read_memory_top_k, top_k_weights
from model.memory_readout import MemoryRecord, l2_affinity, read_memory
from model.network import KEY_CHANNELS, VALUE_CHANNELS
from util import __version__
from util.fileio import atomic_write_text

MANIFEST = "manifest.json"
FORMAT = 1
GRAPH_FILES = {"key_encoder": "key_encoder.onnx", "value_encoder": "value_encoder.onnx", "segment": "segment.onnx"}
QUANTIZATIONS = ("int8",)
# The int8 settings (ONNX Runtime's advice for x86 CPUs, with 7-bit weights against the int16
# saturation of CPUs without VNNI), as the manifest records them.
INT8 = dict(type="int8", format="QDQ", activations="uint8, asymmetric, per tensor",
            weights="int8, symmetric, per output channel, 7-bit range (reduce_range)", calibration_method="MinMax",
            operators="every operator ONNX Runtime quantises (Conv, MatMul, Add, ...)")


def _specs(network):
    """{graph: (file, inputs, outputs)}, each input/output a (name, shape) with symbolic dims:
    H, W frame size (multiples of 16); H/16 ... the feature sizes; K objects; T memory frames."""
    c4, c8, c16 = network.key_encoder.channels
    key, value = KEY_CHANNELS, VALUE_CHANNELS
    frame, small = [1, 3, "H", "W"], ["H/16", "W/16"]
    masks = [1, "K", "H", "W"]
    f8, f4 = [1, c8, "H/8", "W/8"], [1, c4, "H/4", "W/4"]
    values = [1, "K", value] + small
    memory = ("long_term_key", [1, key, "T"] + small), ("long_term_value", [1, "K", value, "T"] + small)
    for name in ("first", "previous"):
        memory += (f"{name}_key", [1, key, 1] + small), (f"{name}_value", [1, "K", value, 1] + small)
    return {
        "key_encoder": (GRAPH_FILES["key_encoder"], [("frame", frame)],
                        [("key", [1, key] + small), ("f16", [1, c16] + small), ("f8", f8), ("f4", f4)]),
        "value_encoder": (GRAPH_FILES["value_encoder"],
                          [("frame", frame), ("next_frame", frame), ("f16", [1, c16] + small), ("masks", masks),
                           ("others", masks)],
                          [("value", values), ("positional_value", values)]),
        "segment": (GRAPH_FILES["segment"], [("key", [1, key] + small), ("f8", f8), ("f4", f4), *memory, ("top_k", [])],
                    [("probabilities", ["K", "H", "W"])]),
    }


class KeyEncoderGraph(nn.Module):
    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, frame):
        return self.network.encode_key(frame)


class ValueEncoderGraph(KeyEncoderGraph):
    def forward(self, frame, next_frame, f16, masks, others):
        return self.network.encode_value(frame, f16, masks, next_frame, others)


def top_k_readout(memory_key, memory_value, query_key, top_k):
    """The long-term readout for a graph (``top_k`` a 0-d int64 tensor): below the memory size,
    inference_core/memory_reader.py's top-k readout; otherwise a plain softmax over the whole
    memory (an ONNX ``If``)."""
    affinity = l2_affinity(memory_key, query_key)
    # The value's (h, w) written as the query's (the same sizes): torch.cond merges the two
    # branches' outputs only where both derive their shapes from the same symbols.
    memory_value = memory_value.reshape(*memory_value.shape[:4], *query_key.shape[-2:])

    def gathered(affinity, memory_value, top_k):
        k = top_k.item()
        torch._check(k >= 1)
        torch._check(k < affinity.shape[1])
        return read_memory_top_k(*top_k_weights(affinity, k), memory_value)

    def dense(affinity, memory_value, top_k):
        return read_memory(torch.softmax(affinity, dim=1), memory_value)

    return torch.cond(top_k < affinity.shape[1], gathered, dense, (affinity, memory_value, top_k))


class SegmentGraph(KeyEncoderGraph):
    """One read's object probabilities (K, H, W): ``TorchBackend.segment`` for one ``MemoryRead``."""

    def forward(self, key, f8, f4, long_term_key, long_term_value, first_key, first_value, previous_key,
                previous_value, top_k):
        net = self.network
        long_term = top_k_readout(long_term_key, long_term_value, key, top_k)
        first = read_memory(torch.softmax(l2_affinity(first_key, key), dim=1), first_value)
        previous = read_memory(torch.softmax(l2_affinity(previous_key, key), dim=1), previous_value)
        fused = net.fuse(long_term.flatten(0, 1), first.flatten(0, 1), previous.flatten(0, 1))
        return net.decode(net.prepare_decoder(key, f8, f4), fused)


GRAPH_MODULES = {"key_encoder": KeyEncoderGraph, "value_encoder": ValueEncoderGraph, "segment": SegmentGraph}


def sample_inputs(network, graph, size=(64, 96), objects=3, memory_frames=5, top_k=4, seed=0):
    """Random inputs {name: tensor} of a graph: frames of ``size`` (multiples of 16), ``objects``
    objects, ``memory_frames`` long-term frames (the export's examples; tests and parity checks)."""
    generator = torch.Generator().manual_seed(seed)
    sizes = {"H": size[0], "W": size[1], "K": objects, "T": memory_frames}
    for d in (4, 8, 16):
        sizes[f"H/{d}"], sizes[f"W/{d}"] = size[0] // d, size[1] // d
    inputs = {}
    for name, shape in _specs(network)[graph][1]:
        if name == "top_k":
            inputs[name] = torch.tensor(top_k, dtype=torch.int64)
        elif name in ("masks", "others"):
            inputs[name] = torch.rand([sizes.get(d, d) for d in shape], generator=generator)
        else:
            inputs[name] = torch.randn([sizes.get(d, d) for d in shape], generator=generator)
    return inputs


def _dynamic_shapes(inputs):
    """torch.export dims of the named inputs: H, W = 16 x (H/16, W/16)."""
    h16, w16 = Dim("h16", min=1, max=1024), Dim("w16", min=1, max=1024)
    dims = {"H": 16 * h16, "W": 16 * w16, "H/16": h16, "W/16": w16, "H/8": 2 * h16, "W/8": 2 * w16,
            "H/4": 4 * h16, "W/4": 4 * w16, "K": Dim("objects", min=1, max=4096),
            "T": Dim("memory_frames", min=1, max=1_000_000)}
    return {name: ({i: dims[d] for i, d in enumerate(shape) if isinstance(d, str)} or None)
            for name, shape in inputs}


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _name_dims(model, inputs, outputs):
    """The graph's inputs and outputs with the spec's dimension names (the exporter's are s0, s1, ...)."""
    for values, spec in ((model.graph.input, inputs), (model.graph.output, outputs)):
        named = dict(spec)
        for value in values:
            if value.name not in named:
                continue
            for dim, want in zip(value.type.tensor_type.shape.dim, named[value.name]):
                if isinstance(want, str):
                    dim.dim_param = want
                else:
                    dim.dim_value = want


def export_graph(network, graph, path, opset=None):
    """Export one graph of ``network`` to ``path``; returns (opset, the graph's input names)."""
    import onnx

    _, inputs, outputs = _specs(network)[graph]
    example = sample_inputs(network, graph)
    module = GRAPH_MODULES[graph](network).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on dim names it renames
        # torch.export first, so that a shape the graph would fix fails here (torch.onnx.export
        # would fall back to a draft export that silently fixes it).
        exported = torch.export.export(module, tuple(example.values()), dynamic_shapes=_dynamic_shapes(inputs),
                                       strict=False)
        program = torch.onnx.export(exported, (), None, dynamo=True, verbose=False, opset_version=opset,
                                    input_names=[n for n, _ in inputs], output_names=[n for n, _ in outputs],
                                    external_data=False)
    model = program.model_proto
    _name_dims(model, inputs, outputs)
    onnx.save(model, path)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return opset, [i.name for i in model.graph.input]


def export_onnx(network, output, checkpoint=None, opset=None, log=print):
    """Write the three graphs of ``network`` (an ``IMSFR`` without the speed layer; exported on the CPU) and
    their manifest into the folder ``output``; ``checkpoint``: the weights' file (its SHA-256
    ties the graphs to it). Returns the manifest (with ``export_seconds``)."""
    if next(network.parameters()).device.type != "cpu":
        network = copy.deepcopy(network).cpu()
    network.eval()
    os.makedirs(output, exist_ok=True)
    manifest = dict(format=FORMAT, project_version=__version__, torch=torch.__version__,
                    exporter="torch.onnx.export(dynamo=True)",
                    checkpoint=None if checkpoint is None else dict(file=os.path.basename(checkpoint),
                                                                    sha256=file_sha256(checkpoint)),
                    network=dict(key_backbone=network.key_backbone, single_object=network.single_object),
                    quantization=None,
                    batch=1, dims={"H, W": "frame height and width (multiples of 16)", "K": "objects",
                                   "T": "long-term memory frames", "H/16 ... W/4": "feature sizes"},
                    graphs={}, export_seconds={})
    for graph, (filename, inputs, outputs) in _specs(network).items():
        start = time.perf_counter()
        path = os.path.join(output, filename)
        manifest["opset"], present = export_graph(network, graph, path, opset)
        seconds = time.perf_counter() - start
        manifest["export_seconds"][graph] = round(seconds, 2)
        manifest["graphs"][graph] = dict(
            file=filename, sha256=file_sha256(path),
            inputs=[dict(name=n, shape=s, dtype="int64" if n == "top_k" else "float32")
                    for n, s in inputs if n in present],
            outputs=[dict(name=n, shape=s, dtype="float32") for n, s in outputs])
        if log:
            log(f"{filename}: {os.path.getsize(path) / 2**20:.1f} MiB, exported in {seconds:.1f} s")
    atomic_write_text(os.path.join(output, MANIFEST), json.dumps(manifest, indent=2) + "\n")
    return manifest


def quantize_graph(source, target, feeds):
    """Static int8 quantisation (``INT8``) of the graph file ``source`` into ``target``, calibrated
    on ``feeds`` (a list of {input name: NumPy array}, e.g. ``OnnxBackend.recorded``)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quant_pre_process, quantize_static)

    if not feeds:
        raise ValueError(f"{os.path.basename(source)}: no calibration inputs (the calibration videos never ran it)")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter(feeds)

        def get_next(self):
            return next(self.feeds, None)

    source, target = os.path.abspath(source), os.path.abspath(target)
    prepared = target + ".prepared.onnx"
    try:
        try:
            # Where symbolic shape inference fails it saves its model (and its weights under random
            # names) into the working folder: make that the target's folder, which the caller owns.
            with contextlib.chdir(os.path.dirname(target)):
                quant_pre_process(source, prepared)
        except Exception:  # symbolic shape inference stops at the derived dims and the If of segment
            quant_pre_process(source, prepared, skip_symbolic_shape=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(prepared, target, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
    finally:
        if os.path.exists(prepared):
            os.remove(prepared)


# (frame size, objects, long-term memory frames, top_k) of the parity checks: two frame sizes,
# 1 and 3 objects, 1 and 12 memory frames, top-k below and above the memory size.
PARITY_CASES = (((64, 96), 1, 1, 4), ((96, 160), 3, 12, 4), ((64, 96), 3, 2, 1000))


def torch_outputs(network, graph, inputs):
    """The PyTorch backend's outputs (a tuple) of ``graph`` on ``inputs`` ({name: tensor})."""
    backend = TorchBackend(network)
    with torch.inference_mode():
        if graph == "key_encoder":
            return tuple(backend.encode_key(inputs["frame"]))
        if graph == "value_encoder":
            return tuple(backend.encode_value(inputs["frame"], inputs["f16"], inputs["masks"], inputs["next_frame"],
                                              inputs["others"]))
        memory = MemoryRecord(*(inputs[f"{m}_{part}"] for m in ("long_term", "first", "previous")
                                for part in ("key", "value")))
        read = MemoryRead(list(range(memory.first_value.shape[1])), tuple(range(memory.long_term_key.shape[2])),
                          -1, -2, memory)
        return (backend.segment(inputs["key"], inputs["f8"], inputs["f4"], [read], int(inputs["top_k"])),)


def parity(network, graph, session, inputs):
    """{output: (max absolute error, max error / max |PyTorch output|)} of an ONNX Runtime
    session of ``graph`` against the PyTorch backend on the same ``inputs`` ({name: tensor})."""
    expected = torch_outputs(network, graph, inputs)
    names = {i.name for i in session.get_inputs()}
    got = session.run(None, {n: t.numpy() for n, t in inputs.items() if n in names})
    result = {}
    for output, want, have in zip(session.get_outputs(), expected, got):
        if tuple(have.shape) != tuple(want.shape):
            raise ValueError(f"{graph} {output.name}: shape {tuple(have.shape)}, PyTorch's {tuple(want.shape)}")
        error = (torch.from_numpy(have) - want).abs().max().item()
        result[output.name] = (error, error / max(want.abs().max().item(), 1e-12))
    return result


def parity_table(network, sessions, cases=PARITY_CASES):
    """[(graph, output, case, max absolute error, relative error)] of ``parity`` over ``cases``
    (``sessions``: {graph: ONNX Runtime session})."""
    rows = []
    for graph, session in sessions.items():
        seen = set()  # cases that give a graph the same input shapes (the key encoder sees frames only)
        for case in cases:
            inputs = sample_inputs(network, graph, *case, seed=1)
            shapes = tuple((tuple(t.shape), t.item() if t.dim() == 0 else None) for t in inputs.values())
            if shapes in seen:
                continue
            seen.add(shapes)
            for output, (error, relative) in parity(network, graph, session, inputs).items():
                rows.append((graph, output, case, error, relative))
    return rows

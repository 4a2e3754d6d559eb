"""ONNX export and the ONNX Runtime backend (issue 20): a random-init ResNet-18 network exported
once (scripts/export_onnx.py's code), its graphs against PyTorch (per graph, dynamic sizes), a
video through the core with both backends, eval_davis.py with both (scripts/compare_eval_runs.py)
and the setup errors of all four eval scripts (exit code 2, one line)."""
import json
import os
import shutil

import onnx
import pytest
import torch

import eval_davis
import eval_davis_2016
import eval_generic
import eval_youtube
from dataset.synthetic import make_davis_dataset, make_youtube_dataset
from inference_core.core import InferenceCore
from inference_core.onnx_backend import OnnxBackend
from inference_core.onnx_export import GRAPH_FILES, MANIFEST, PARITY_CASES, export_onnx, file_sha256, parity_table
from scripts import compare_eval_runs
from tests.helpers_capture import progress_to_current_streams
from tests.helpers_core import run_core
from util import __version__
from util.config import PRESETS

pytestmark = pytest.mark.usefixtures("cached_network")


@pytest.fixture(scope="module")
def exported(weights, weights_network, tmp_path_factory):
    """(folder, manifest) of the test network's graphs."""
    folder = str(tmp_path_factory.mktemp("onnx") / "graphs")
    return folder, export_onnx(weights_network, folder, checkpoint=weights, log=None)


@pytest.fixture(scope="module")
def backend(exported, weights):
    return OnnxBackend(exported[0], "cpu", checkpoint=weights, threads=2)


def dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_the_manifest_records_opset_names_shapes_checkpoint_and_version(exported, weights):
    folder, manifest = exported
    with open(os.path.join(folder, MANIFEST)) as f:
        assert json.load(f) == manifest
    assert manifest["checkpoint"]["sha256"] == file_sha256(weights)
    assert manifest["project_version"] == __version__
    assert manifest["network"] == dict(key_backbone="resnet18", single_object=False)
    for graph, filename in GRAPH_FILES.items():
        model = onnx.load(os.path.join(folder, filename))
        entry = manifest["graphs"][graph]
        assert entry["file"] == filename and entry["sha256"] == file_sha256(os.path.join(folder, filename))
        assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [manifest["opset"]]
        for values, listed in ((model.graph.input, entry["inputs"]), (model.graph.output, entry["outputs"])):
            assert [(v.name, dims(v)) for v in values] == [(v["name"], v["shape"]) for v in listed]
    # The axes that vary at run time are named, not fixed by the export's example sizes.
    key_inputs = {v["name"]: v["shape"] for v in manifest["graphs"]["segment"]["inputs"]}
    assert key_inputs["long_term_value"] == [1, "K", 512, "T", "H/16", "W/16"] and key_inputs["top_k"] == []
    assert manifest["graphs"]["key_encoder"]["inputs"] == [dict(name="frame", shape=[1, 3, "H", "W"],
                                                                dtype="float32")]


def test_each_graph_matches_pytorch_at_two_sizes_1_and_3_objects_1_and_12_memory_frames(backend, weights_network):
    rows = parity_table(weights_network, backend.sessions)
    assert {(graph, output) for graph, output, *_ in rows} == {
        ("key_encoder", "key"), ("key_encoder", "f16"), ("key_encoder", "f8"), ("key_encoder", "f4"),
        ("value_encoder", "value"), ("value_encoder", "positional_value"), ("segment", "probabilities")}
    assert {case[0] for case in PARITY_CASES} == {(64, 96), (96, 160)}
    assert {case[1] for case in PARITY_CASES} == {1, 3} and {case[2] for case in PARITY_CASES} >= {1, 12}
    # top_k 1000 is more than the memory: plain softmax over the whole memory, as PyTorch.
    assert len([r for r in rows if r[0] == "segment"]) == len(PARITY_CASES)
    worst = max(relative for *_, relative in rows)
    assert worst <= 1e-4, [r for r in rows if r[-1] > 1e-4]


def test_a_video_through_the_core_gives_the_same_labels_with_both_backends(backend, weights_network):
    generator = torch.Generator().manual_seed(3)
    frames = [torch.randn(3, 50, 70, generator=generator) for _ in range(6)]  # padded to 64x80
    mask = torch.zeros(50, 70, dtype=torch.long)
    mask[5:25, 5:30], mask[30:45, 35:65] = 1, 2
    later = torch.zeros(50, 70, dtype=torch.long)
    later[10:40, 40:60] = 3
    given = {0: (mask, [1, 2]), 2: (later, [3])}  # two groups; object 3 from frame 2
    # Per-object reads (youtube procedure: one segment call per read), sampling from 3 memory frames on.
    config = PRESETS["generic"].replace(mem_every=1, sample_threshold=2, anchors=(0, -2), memory_budget=None)
    with_torch = run_core(InferenceCore(weights_network, config, "cpu"), frames, given)
    with_onnx = run_core(InferenceCore(backend, config, "cpu"), frames, given)
    assert with_torch.keys() == with_onnx.keys() == set(range(6))
    same = sum(int((with_torch[t].argmax(0) == with_onnx[t].argmax(0)).sum()) for t in with_torch)
    assert same / (6 * 50 * 70) >= 0.999
    assert max((with_torch[t] - with_onnx[t]).abs().max().item() for t in with_torch) < 1e-4


def test_eval_davis_with_both_backends_gives_the_same_j_and_f(exported, weights, tmp_path, capsys):
    result_file = tmp_path / "compare.json"
    with progress_to_current_streams():
        code = compare_eval_runs.main(["--model", weights, "--synthetic", "2", "4", "48", "64", "--device", "cpu",
                                       "--names", "torch", "onnxruntime", f"--second=--backend onnxruntime --onnx "
                                       f"{exported[0]}", "--json", str(result_file)])
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(result_file.read_text())
    assert abs(result["j_and_f_difference"]) <= 0.002 and result["label_agreement"] >= 0.999
    assert "| onnxruntime | --backend onnxruntime --onnx" in out and "J&F difference (onnxruntime - torch)" in out


# ----------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """{script: dataset flags} for a tiny DAVIS and YouTube-VOS set."""
    root = tmp_path_factory.mktemp("onnx_data")
    make_davis_dataset(root / "davis" / "trainval", num_sequences=1, num_frames=3, size=(48, 64), splits=("val",))
    make_youtube_dataset(root / "yv", num_videos=1, num_frames=3, size=(48, 64), max_objects=2)
    return {eval_davis: ["--davis_path", str(root / "davis")],
            eval_davis_2016: ["--davis_path", str(root / "davis" / "trainval")],
            eval_youtube: ["--yv_path", str(root / "yv")], eval_generic: ["--data", str(root / "yv" / "valid")]}


@pytest.fixture(scope="module")
def other_weights(weights_network, tmp_path_factory):
    """Another checkpoint of the same kind of network (a decoder weight changed)."""
    state = dict(weights_network.state_dict())
    state["decoder.pred.weight"] = state["decoder.pred.weight"] + 0.5
    path = tmp_path_factory.mktemp("other") / "other.pth"
    torch.save(state, path)
    return str(path)


def broken_copy(exported, tmp_path, change):
    """A copy of the export (graphs linked) with ``change(folder, manifest)`` applied."""
    folder = tmp_path / "broken"
    folder.mkdir()
    for filename in GRAPH_FILES.values():
        os.symlink(os.path.join(exported[0], filename), folder / filename)
    manifest = json.loads(json.dumps(exported[1]))
    change(folder, manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return str(folder)


def run_setup_error(script, argv, capsys):
    with progress_to_current_streams():
        code = script.main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, captured.out, captured.err)
    return lines[0]


def test_graphs_of_another_checkpoint_are_refused_by_every_eval_script(exported, other_weights, datasets,
                                                                       tmp_path, capsys):
    for script, data in datasets.items():
        line = run_setup_error(script, ["--model", other_weights, "--device", "cpu", "--output",
                                        str(tmp_path / script.__name__), "--backend", "onnxruntime", "--onnx",
                                        exported[0]] + data, capsys)
        assert f"{exported[0]}: the graphs were exported from another checkpoint (net.pth), not from --model " \
               f"{other_weights}" in line
        assert not (tmp_path / script.__name__).exists()


def truncate(folder, manifest):
    source = os.path.realpath(folder / GRAPH_FILES["value_encoder"])
    os.remove(folder / GRAPH_FILES["value_encoder"])
    with open(source, "rb") as f:
        (folder / GRAPH_FILES["value_encoder"]).write_bytes(f.read(100_000))


def garbage(folder, manifest):
    os.remove(folder / GRAPH_FILES["key_encoder"])
    (folder / GRAPH_FILES["key_encoder"]).write_bytes(b"not an ONNX graph")
    manifest["graphs"]["key_encoder"]["sha256"] = file_sha256(folder / GRAPH_FILES["key_encoder"])


@pytest.mark.parametrize("change, message", [
    (lambda folder, manifest: os.remove(folder / GRAPH_FILES["segment"]),
     "segment.onnx: graph file not found (write the graphs with: python scripts/export_onnx.py"),
    (truncate, "value_encoder.onnx: not the graph manifest.json lists (SHA-256 differs"),
    (garbage, "key_encoder.onnx: ONNX Runtime cannot load this graph ("),
    (lambda folder, manifest: manifest.clear(), "manifest.json: not a manifest of format 1"),
], ids=["missing graph", "truncated graph", "corrupt graph", "empty manifest"])
def test_a_missing_changed_or_corrupt_graph_is_one_line_and_exit_code_2(exported, weights, datasets, tmp_path,
                                                                        capsys, change, message):
    folder = broken_copy(exported, tmp_path, change)
    line = run_setup_error(eval_davis, ["--model", weights, "--device", "cpu", "--output", str(tmp_path / "out"),
                                        "--backend", "onnxruntime", "--onnx", folder] + datasets[eval_davis], capsys)
    assert message in line
    assert not (tmp_path / "out").exists()


def test_backend_flags_that_do_not_fit_are_one_line(exported, weights, datasets, tmp_path, capsys):
    common = ["--model", weights, "--device", "cpu", "--output", str(tmp_path / "out")] + datasets[eval_generic]
    cases = [(["--backend", "onnxruntime"], "--backend onnxruntime needs --onnx DIR"),
             (["--onnx", exported[0]], f"--onnx {exported[0]} goes with --backend onnxruntime"),
             (["--backend", "onnxruntime", "--onnx", str(tmp_path)], f"{tmp_path / MANIFEST}: not found"),
             (["--backend", "onnxruntime", "--onnx", str(tmp_path / "none")], f"--onnx {tmp_path / 'none'}: no such")]
    for flags, message in cases:
        assert message in run_setup_error(eval_generic, common + flags, capsys)
    shutil.rmtree(tmp_path / "out", ignore_errors=True)

"""ONNX export and the ONNX Runtime backend (issue 20): a random-init ResNet-18 network exported
once (scripts/export_onnx.py's code), its graphs against PyTorch (per graph, dynamic sizes), a
video through the core with both backends, eval_davis.py with both (scripts/compare_eval_runs.py)
and the setup errors of all four eval scripts (exit code 2, one line)."""
import json
import os
import shutil
from pathlib import Path

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
from scripts import export_onnx as export_onnx_script
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


# ----------------------------------------------------------------------------- hostile exports
# Field types, unreadable graphs, untrusted graphs: checked before any graph is loaded, so a folder
# of stand-in files with a hand-written manifest is enough (no export).
def fake_export(folder, weights, change=None, graphs=None):
    """An export folder whose graphs are ``graphs`` ({file: bytes}; default: stand-in bytes) with
    a manifest that lists them and ``weights``, then ``change(folder, manifest)`` applied."""
    os.makedirs(folder, exist_ok=True)
    manifest = dict(format=1, opset=20, checkpoint=dict(file="net.pth", sha256=file_sha256(weights)),
                    quantization=None, graphs={})
    for graph, filename in GRAPH_FILES.items():
        with open(os.path.join(folder, filename), "wb") as f:
            f.write((graphs or {}).get(filename, b"stand-in for " + filename.encode()))
        manifest["graphs"][graph] = dict(file=filename, sha256=file_sha256(os.path.join(folder, filename)))
    if change:
        change(folder, manifest)
    with open(os.path.join(folder, MANIFEST), "w") as f:
        f.write(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return str(folder)


def set_field(path, value):
    def change(folder, manifest):
        *parents, last = path.split(".")
        entry = manifest
        for key in parents:
            entry = entry[key]
        entry[last] = value
    return change


@pytest.mark.parametrize("path, value, message", [
    ("checkpoint", "net.pth", "field checkpoint must be null or an object with \"file\" and \"sha256\", not a string"),
    ("checkpoint.sha256", 12, "field checkpoint.sha256 must be a SHA-256 (64 hex digits), not a number"),
    ("checkpoint.file", None, "field checkpoint.file must be a string (the checkpoint's file name), not null"),
    ("graphs.segment.sha256", ["a"], "field graphs.segment.sha256 must be a SHA-256 (64 hex digits), not a list"),
    ("graphs.key_encoder.file", "../x.onnx", "field graphs.key_encoder.file must be \"key_encoder.onnx\", not a string"),
    ("graphs.value_encoder", "value_encoder.onnx", "does not list the graphs key_encoder, value_encoder, segment"),
    ("opset", "20", "field opset must be a whole number, not a string"),
    ("format", "1", "not a manifest of format 1"),
    ("quantization", "int8", "field quantization must be null (float32) or an object with \"type\" and \"graphs\""),
    ("quantization", dict(type="int4", graphs=["segment"]), "field quantization.type must be \"int8\", not a string"),
    ("quantization", dict(type="int8", graphs="segment"), "field quantization.graphs must be a list of graphs"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None)
def test_a_manifest_field_of_the_wrong_type_is_one_line_naming_it(weights, datasets, tmp_path, capsys, path, value,
                                                                   message):
    folder = fake_export(tmp_path / "graphs", weights, set_field(path, value))
    line = run_setup_error(eval_davis, ["--model", weights, "--device", "cpu", "--output", str(tmp_path / "out"),
                                        "--backend", "onnxruntime", "--onnx", folder] + datasets[eval_davis], capsys)
    assert f"{folder}/manifest.json: " in line and message in line, line
    assert not (tmp_path / "out").exists()


def unreadable(folder, manifest):
    """key_encoder.onnx without read permission; root reads it anyway, so there its reading fails."""
    os.chmod(os.path.join(folder, GRAPH_FILES["key_encoder"]), 0)


def graph_folder(folder, manifest):
    os.remove(os.path.join(folder, GRAPH_FILES["segment"]))
    os.mkdir(os.path.join(folder, GRAPH_FILES["segment"]))


def escaping_graph():
    """A valid ONNX graph whose weight is 'external data' in a file outside its folder."""
    tensor = onnx.TensorProto(name="w", data_type=onnx.TensorProto.UINT8, dims=[4],
                              data_location=onnx.TensorProto.EXTERNAL)
    for key, value in (("location", "../secret.bin"), ("offset", "0"), ("length", "4")):
        tensor.external_data.add(key=key, value=value)
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["w"], ["y"])], "g", [],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.UINT8, [4])], [tensor])
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 20)]).SerializeToString()


@pytest.mark.parametrize("change, message", [
    (None, "key_encoder.onnx: ONNX Runtime cannot load this graph ("),  # the fields are right: on to the graphs
    (unreadable, "key_encoder.onnx: cannot read the graph file (Permission denied)"),
    (graph_folder, "segment.onnx: is a folder, not a graph file"),
    (set_field("graphs.segment.sha256", "0" * 64), "segment.onnx: not the graph manifest.json lists (SHA-256 differs"),
    (lambda folder, manifest: manifest.update(checkpoint=None), "the graphs were exported from another checkpoint "
                                                                "(no checkpoint), not from --model"),
], ids=["stand-in graphs", "no read permission", "a folder", "another sha256", "no checkpoint"])
def test_an_unreadable_or_misplaced_graph_is_one_line_and_exit_code_2(weights, datasets, tmp_path, capsys,
                                                                      monkeypatch, change, message):
    folder = fake_export(tmp_path / "graphs", weights, change)
    if change is unreadable and os.geteuid() == 0:  # permissions do not stop root: fail its read as they would
        import builtins
        real_open, target = builtins.open, os.path.join(folder, GRAPH_FILES["key_encoder"])

        def denying_open(path, *args, **kwargs):
            if os.fspath(path) == target:
                raise PermissionError(13, "Permission denied", path)
            return real_open(path, *args, **kwargs)
        monkeypatch.setattr(builtins, "open", denying_open)
    line = run_setup_error(eval_davis, ["--model", weights, "--device", "cpu", "--output", str(tmp_path / "out"),
                                        "--backend", "onnxruntime", "--onnx", folder] + datasets[eval_davis], capsys)
    assert message in line, line
    assert not (tmp_path / "out").exists()


def test_a_graph_reading_a_file_outside_its_folder_is_refused(weights, datasets, tmp_path, capsys):
    (tmp_path / "secret.bin").write_bytes(b"1234")
    folder = fake_export(tmp_path / "graphs", weights, graphs={GRAPH_FILES["key_encoder"]: escaping_graph()})
    line = run_setup_error(eval_davis, ["--model", weights, "--device", "cpu", "--output", str(tmp_path / "out"),
                                        "--backend", "onnxruntime", "--onnx", folder] + datasets[eval_davis], capsys)
    assert "key_encoder.onnx: ONNX Runtime cannot load this graph (" in line and "External data path" in line, line


@pytest.mark.parametrize("write, message", [
    (lambda path: path.write_text("[" * 100_000 + "]" * 100_000), "manifest.json: not a readable manifest ("),
    (lambda path: path.write_bytes(b"\xff\xfe{}"), "manifest.json: not a readable manifest ("),
    (lambda path: path.write_text(" " * (2 << 20) + "{}"), "manifest.json: 2097154 bytes, not a manifest (at most"),
    (lambda path: path.mkdir(), "manifest.json: not a readable manifest (Is a directory)"),
    (lambda path: path.write_text("[1, 2]"), "manifest.json: not a manifest of format 1"),
], ids=["nested 100000 deep", "not UTF-8", "2 MiB", "a folder", "a list"])
def test_a_manifest_that_is_not_one_is_one_line(weights, datasets, tmp_path, capsys, write, message):
    folder = fake_export(tmp_path / "graphs", weights)
    os.remove(os.path.join(folder, MANIFEST))
    write(tmp_path / "graphs" / MANIFEST)
    line = run_setup_error(eval_davis, ["--model", weights, "--device", "cpu", "--output", str(tmp_path / "out"),
                                        "--backend", "onnxruntime", "--onnx", folder] + datasets[eval_davis], capsys)
    assert message in line, line


def test_a_checkpoint_folder_is_one_line_with_the_onnx_backend(weights, datasets, tmp_path, capsys):
    folder = fake_export(tmp_path / "graphs", weights)
    common = ["--device", "cpu", "--output", str(tmp_path / "out"), "--backend", "onnxruntime", "--onnx", folder]
    (tmp_path / "ckpt").mkdir()
    line = run_setup_error(eval_davis, ["--model", str(tmp_path / "ckpt")] + common + datasets[eval_davis], capsys)
    assert f"{tmp_path / 'ckpt'}: is a folder, not a checkpoint file" in line, line


# ----------------------------------------------------------------------------- scripts/export_onnx.py
def export_error(argv, capsys):
    """scripts/export_onnx.py's one stderr line for ``argv``; it must exit with 2 (argparse's exit too)."""
    try:
        code = export_onnx_script.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, captured.out, captured.err)
    return lines[0]


@pytest.fixture(scope="module")
def calibration_set(tmp_path_factory):
    """A DAVIS-layout folder of two short synthetic videos (the export's --calibration)."""
    root = tmp_path_factory.mktemp("calibration") / "trainval"
    make_davis_dataset(root, num_sequences=2, num_frames=5, size=(48, 64), splits=("val",))
    return str(root)


def test_export_flags_and_inputs_that_cannot_work_are_one_line_before_anything_is_written(weights, calibration_set,
                                                                                       tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    not_a_checkpoint = tmp_path / "notes.pth"
    not_a_checkpoint.write_bytes(b"not a checkpoint")
    out = str(tmp_path / "out")
    model = ["--model", weights]
    cases = [
        (model + ["--output", str(a_file)], f"--output {a_file}: is a file, not a folder"),
        (model + ["--output", str(a_file / "sub")], f"--output {a_file / 'sub'}: {a_file} is a file, not a folder"),
        (model + ["--output", "/sys/imsfr_onnx/graphs"], "--output /sys/imsfr_onnx/graphs: cannot"),
        (["--model", str(not_a_checkpoint), "--output", out], f"{not_a_checkpoint}: not a readable PyTorch checkpoint"),
        (["--model", str(tmp_path), "--output", out], f"{tmp_path}: is a folder, not a checkpoint file"),
        (["--model", str(tmp_path / "none.pth"), "--output", out], "none.pth: checkpoint file not found"),
        (["--output", out], "scripts/export_onnx.py: the following arguments are required: --model"),
        (model + ["--output", out, "--opset", "7"], "--opset 7: the exporter writes opsets 18 to"),
        (model + ["--output", out, "--opset", "x"], "argument --opset: invalid int value: 'x'"),
        (model + ["--output", out, "--tolerance", "nan"], "--tolerance nan: must be a number >= 0"),
        (model + ["--output", out, "--quantize", "int4"], "argument --quantize: invalid choice: 'int4'"),
        (model + ["--output", out, "--quantize", "int8"], "--quantize int8 needs --calibration DIR"),
        (model + ["--output", out, "--calibration", calibration_set], "--calibration goes with --quantize int8"),
        (model + ["--output", out, "--calibration_frames", "4"], "--calibration_frames goes with --quantize int8"),
        (model + ["--output", out, "--quantize", "int8", "--calibration", str(tmp_path)],
         f"--calibration {tmp_path}: no JPEGImages/ folder of videos in it"),
        (model + ["--output", out, "--quantize", "int8", "--calibration", calibration_set, "--calibration_frames",
                  "1"], "--calibration_frames 1: at least 1 video of at least 2 frames"),
        (model + ["--output", out, "--quantize", "int8", "--calibration", calibration_set, "--min_agreement", "2"],
         "--min_agreement 2.0: must be between 0 and 1"),
    ]
    for argv, message in cases:
        assert message in export_error(argv, capsys), argv
        assert not os.path.exists(out) and a_file.read_text() == "keep me"


def test_a_broken_calibration_video_is_one_line(weights, calibration_set, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(os.path.dirname(calibration_set), broken)
    first = sorted((broken / "trainval" / "JPEGImages" / "480p").iterdir())[0]
    (first / "00002.jpg").write_bytes(b"not a JPEG")
    line = export_error(["--model", weights, "--output", str(tmp_path / "out"), "--quantize", "int8",
                         "--calibration", str(broken / "trainval")], capsys)
    assert f"--calibration: {first / '00002.jpg'}" in line, line
    assert not (tmp_path / "out").exists()


def test_an_export_that_fails_halfway_leaves_the_output_as_it_was(weights, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text("an earlier export's manifest")

    def failing_export(network, folder, **kwargs):
        (Path(folder) / GRAPH_FILES["key_encoder"]).write_bytes(b"half a graph")
        raise RuntimeError("the exporter gave up\nsecond line")
    monkeypatch.setattr(export_onnx_script, "export_onnx", failing_export)
    assert export_onnx_script.main(["--model", weights, "--output", str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: the export failed, nothing written to {out} (the exporter gave up)"]
    assert sorted(os.listdir(out)) == [MANIFEST] and (out / MANIFEST).read_text() == "an earlier export's manifest"
    monkeypatch.setattr(export_onnx_script, "export_onnx", failing_export)
    assert export_onnx_script.main(["--model", weights, "--output", str(tmp_path / "new" / "out")]) == 1
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_quantize_int8_writes_int8_graphs_that_the_backend_runs_close_to_float32(weights, exported, calibration_set,
                                                                                   datasets, tmp_path, capsys,
                                                                                   monkeypatch):
    # A random-init network's probabilities are nearly equal everywhere (max |dp| of int8 a few 1e-3), so its
    # labels are ties that int8 breaks differently: its agreement (83 %) is below the default 99 %, which
    # is the check's other test below; here it is asked for 50 %.
    out = tmp_path / "int8"
    cwd = tmp_path / "cwd"  # ONNX Runtime's shape inference, where it fails, saves its model into the working folder
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    code = export_onnx_script.main(["--model", weights, "--output", str(out), "--quantize", "int8", "--calibration",
                                    calibration_set, "--calibration_frames", "5", "--min_agreement", "0.5"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert os.listdir(cwd) == []
    manifest = json.loads((out / MANIFEST).read_text())
    quantization = manifest["quantization"]
    assert {k: quantization[k] for k in ("type", "format", "graphs")} == dict(type="int8", format="QDQ",
                                                                              graphs=list(GRAPH_FILES))
    assert quantization["calibration"]["videos"] == ["seq_val_000", "seq_val_001"]
    assert quantization["calibration"]["frames"] == [5, 5] and quantization["calibration"]["inputs"]["key_encoder"] == 10
    check = quantization["check"]
    assert f"labels equal on {100 * check['label_agreement']:.3f} % of the pixels" in printed
    assert 0 < check["max_abs_probability_difference"] < 0.05 and manifest["parity"]["max_rel_error"] <= 1e-4
    assert sorted(os.listdir(out)) == sorted([*GRAPH_FILES.values(), MANIFEST])  # no temporary folder left
    for graph, filename in GRAPH_FILES.items():
        model = onnx.load(str(out / filename))
        assert manifest["graphs"][graph]["sha256"] == file_sha256(out / filename)
        assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in model.graph.node}
        assert any(t.data_type == onnx.TensorProto.INT8 for t in model.graph.initializer), graph  # int8 weights
        assert os.path.getsize(out / filename) < 0.5 * os.path.getsize(os.path.join(exported[0], filename))
    # The backend runs them (and says what they are): a video through the core, against the float32 graphs.
    backend = OnnxBackend(str(out), "cpu", checkpoint=weights, threads=2)
    assert backend.precision == "int8: key_encoder, value_encoder, segment"
    generator = torch.Generator().manual_seed(5)
    frames = [torch.randn(3, 48, 64, generator=generator) for _ in range(6)]
    mask = torch.zeros(48, 64, dtype=torch.long)
    mask[4:24, 4:30], mask[26:44, 34:60] = 1, 2
    config = PRESETS["davis2017"].replace(mem_every=2)
    float32 = run_core(InferenceCore(OnnxBackend(exported[0], "cpu", threads=2), config, "cpu"), frames,
                       {0: (mask, [1, 2])})
    int8 = run_core(InferenceCore(backend, config, "cpu"), frames, {0: (mask, [1, 2])})
    assert float32.keys() == int8.keys() == set(range(6))
    difference = max((float32[t] - int8[t]).abs().max().item() for t in float32)
    assert 1e-5 < difference < 0.05, difference  # int8 (not float32 again), and close to float32
    with progress_to_current_streams():
        code = eval_davis.main(["--model", weights, "--device", "cpu", "--output", str(tmp_path / "results"),
                                "--backend", "onnxruntime", "--onnx", str(out), "--no_eval"] + datasets[eval_davis])
    assert code == 0
    assert f"note: {out / MANIFEST}: quantised graphs (int8: key_encoder, value_encoder, segment)" in \
        capsys.readouterr().out


@pytest.mark.slow
def test_int8_graphs_whose_labels_differ_from_float32_give_exit_code_1(weights, calibration_set, tmp_path, capsys):
    out = tmp_path / "int8"
    code = export_onnx_script.main(["--model", weights, "--output", str(out), "--quantize", "int8", "--calibration",
                                    calibration_set, "--calibration_videos", "1", "--calibration_frames", "5"])
    printed = capsys.readouterr().out
    agreement = json.loads((out / MANIFEST).read_text())["quantization"]["check"]["label_agreement"]
    assert code == 1 and agreement < 0.99, (agreement, printed)  # the random network's ties (see above)
    assert f"labels equal on {100 * agreement:.3f} % of the pixels" in printed and "(at least 99 %)" in printed

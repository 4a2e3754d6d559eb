"""--precision: native bfloat16 read from the CPU's flags (both answers, injected), what auto and
the reference's --amp resolve to, the flags of every eval script, the refusal with ONNX Runtime,
and per-frame timing as an opt-in of InferenceCore.run."""
import argparse

import pytest
import torch

import eval_davis
from dataset.synthetic import make_davis_dataset
from inference_core import build, cli
from inference_core import core as core_module
from inference_core.core import InferenceCore
from tests.helpers_capture import progress_to_current_streams
from util import device as device_module
from util.config import PRESETS
from util.device import cpu_bf16_supported, cpu_flags, cpu_native, inference_dtype

pytestmark = pytest.mark.usefixtures("cached_network")


def cpuinfo(*flags):
    """The text /proc/cpuinfo has for one core with these flags."""
    return ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\n"
            f"flags\t\t: fpu sse sse2 {' '.join(flags)}\nbugs\t\t: spectre_v1\n\n")


ICE_LAKE = cpuinfo("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni")   # oneDNN says "bf16": it has none
SAPPHIRE_RAPIDS = cpuinfo("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")
ZEN4 = cpuinfo("avx2", "avx512f", "avx512_bf16")
ZEN3 = cpuinfo("avx2", "fma", "vaes")
AMX_ONLY = cpuinfo("avx2", "amx_bf16")


@pytest.mark.parametrize("text,native", [(ICE_LAKE, False), (ZEN3, False), (SAPPHIRE_RAPIDS, True), (ZEN4, True),
                                         (AMX_ONLY, True), ("", False), ("processor : 0\n", False)])
def test_native_bfloat16_is_the_cpu_flag(text, native):
    assert cpu_bf16_supported(text) is native
    assert inference_dtype("auto", "cpu", text) == (torch.bfloat16 if native else torch.float32)


def test_flags_are_read_from_proc_cpuinfo(tmp_path, monkeypatch):
    path = tmp_path / "cpuinfo"
    monkeypatch.setattr(device_module, "CPUINFO", str(path))
    assert cpu_flags() == set() and not cpu_bf16_supported()  # no such file (not Linux): no native bfloat16
    path.write_text(ICE_LAKE + ICE_LAKE)
    assert cpu_flags() == {"fpu", "sse", "sse2", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"}
    assert not cpu_bf16_supported() and inference_dtype("auto", "cpu") == torch.float32
    path.write_text(SAPPHIRE_RAPIDS)
    assert cpu_bf16_supported() and inference_dtype("auto", "cpu") == torch.bfloat16
    assert cpu_native(torch.float16) and not cpu_native(torch.float16, ZEN4) and cpu_native(torch.float32, "")


@pytest.mark.parametrize("precision,device,expected", [
    ("fp32", "cpu", torch.float32), ("bf16", "cpu", torch.bfloat16), ("fp16", "cpu", torch.float16),
    ("amp", "cpu", torch.bfloat16), ("amp", "cuda", torch.float16), ("auto", "cuda", torch.float16),
    ("bf16", "cuda", torch.bfloat16), ("fp32", "cuda", torch.float32)])
def test_precision_resolves_per_device(precision, device, expected):
    """Named types on any CPU (emulated where not native), --amp as the reference, auto on CUDA
    (device types only: no GPU needed)."""
    assert inference_dtype(precision, device, ZEN3) == expected


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16, auto"):
        inference_dtype("fp8", "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        PRESETS["davis2017"].replace(precision="half")


@pytest.mark.parametrize("benchmark,default", [("davis2017", "fp32"), ("davis2016", "fp32"), ("youtube", "fp32"),
                                               ("generic", "auto")])
def test_precision_flags_of_every_eval_script(benchmark, default):
    def parse(*argv):
        parser = argparse.ArgumentParser()
        cli.add_inference_arguments(parser, benchmark)
        return cli.config_from_args(parser.parse_args(["--model", "m", "--output", "o", *argv]))

    assert parse().precision == default
    assert parse("--precision", "bf16").precision == "bf16"
    assert parse("--amp").precision == "amp" and parse("--amp").amp
    assert parse("--precision", "fp32").amp is False
    with pytest.raises(SystemExit):
        parse("--precision", "fp8")


def test_build_core_takes_the_configs_precision(weights, tmp_path, monkeypatch, capsys):
    """build_core(model, config) runs config.precision (the demo passes its preset's); auto on a CPU
    without native bfloat16 is float32 and says nothing, a named bf16 there says it is emulated."""
    path = tmp_path / "cpuinfo"
    monkeypatch.setattr(device_module, "CPUINFO", str(path))
    path.write_text(ZEN3)
    assert build.build_core(weights, PRESETS["generic"], "cpu").dtype == torch.float32
    assert capsys.readouterr().out == ""
    assert build.build_core(weights, PRESETS["generic"].replace(precision="bf16"), "cpu").dtype == torch.bfloat16
    assert "note: this CPU has no native bf16" in capsys.readouterr().out
    path.write_text(SAPPHIRE_RAPIDS)
    assert build.build_core(weights, PRESETS["generic"], "cpu").dtype == torch.bfloat16
    assert capsys.readouterr().out == ""


def test_onnx_backend_runs_float32_and_refuses_a_named_reduced_precision():
    assert build.onnx_config(PRESETS["generic"]).precision == "fp32"
    assert build.onnx_config(PRESETS["davis2017"]).precision == "fp32"
    for precision, flag in (("bf16", "--precision bf16"), ("fp16", "--precision fp16"), ("amp", "--amp")):
        with pytest.raises(ValueError, match=f"^{flag} does not apply to --backend onnxruntime"):
            build.onnx_config(PRESETS["davis2017"].replace(precision=precision))


@pytest.mark.parametrize("flags", [["--precision", "bf16"], ["--amp"]])
def test_eval_script_refuses_reduced_precision_with_onnxruntime(weights, tmp_path, capsys, flags):
    make_davis_dataset(tmp_path / "d" / "trainval", num_sequences=1, num_frames=3, size=(48, 64), splits=("val",))
    output = tmp_path / "out"
    with progress_to_current_streams():
        code = eval_davis.main(["--model", weights, "--davis_path", str(tmp_path / "d"), "--output", str(output),
                                "--device", "cpu", "--backend", "onnxruntime", "--onnx", str(tmp_path), *flags])
    err = capsys.readouterr().err
    assert code == 2 and not output.exists()
    assert err.splitlines() == [f"error: {' '.join(flags)} does not apply to --backend onnxruntime (its graphs "
                                f"compute in float32); use --precision fp32 or auto"]


def test_per_frame_timing_is_opt_in(network, monkeypatch):
    """InferenceCore.run synchronises the device and times each frame only with timed=True."""
    calls = []
    monkeypatch.setattr(core_module, "synchronize", lambda device: calls.append(device))
    frames = [torch.randn(3, 32, 48, generator=torch.Generator().manual_seed(t)) for t in range(3)]
    mask = torch.zeros(32, 48, dtype=torch.long)
    mask[8:20, 10:30] = 1
    core = InferenceCore(network, PRESETS["davis2017"], "cpu")
    untimed = list(core.run(frames, {0: (mask, [1])}))
    assert [r.seconds for r in untimed] == [None] * 3 and calls == []
    timed = list(core.run(frames, {0: (mask, [1])}, timed=True))
    assert all(r.seconds > 0 for r in timed) and len(calls) == 2 * len(timed)
    assert all(torch.equal(a.prob, b.prob) for a, b in zip(untimed, timed))

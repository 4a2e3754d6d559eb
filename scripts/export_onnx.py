"""Export the network's three calls to ONNX (docs/deployment.md) and check them against PyTorch.

    python scripts/export_onnx.py --model saves/imsfr.pth --output onnx/
    python eval_davis.py --model saves/imsfr.pth --backend onnxruntime --onnx onnx/ --output results/d17_val

Writes <output>/key_encoder.onnx, value_encoder.onnx, segment.onnx and manifest.json (opset,
input and output names and shapes, the checkpoint's SHA-256, the project version), then runs
each graph in ONNX Runtime next to the PyTorch backend on random inputs (two frame sizes, 1 and
3 objects, 1 and 12 memory frames) and prints the largest absolute and relative errors; the
manifest records them ("parity"). Exit code 1 when an error exceeds --tolerance (relative).
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from inference_core.onnx_backend import OnnxBackend, OnnxError  # noqa: E402
from inference_core.onnx_export import MANIFEST, export_onnx, parity_table  # noqa: E402
from model.checkpoint import CheckpointError, build_network  # noqa: E402
from util.fileio import atomic_write_text  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="network weights (state dict or training checkpoint)")
    parser.add_argument("--output", required=True, help="folder for the graphs and manifest.json")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's recommended)")
    parser.add_argument("--no_check", action="store_true", help="skip the parity check against PyTorch")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest relative error of the parity check (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        network = build_network(args.model, "cpu")
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    manifest = export_onnx(network, args.output, checkpoint=args.model, opset=args.opset)
    print(f"exported {args.output} (opset {manifest['opset']}) in {time.perf_counter() - start:.1f} s")
    if args.no_check:
        return 0
    try:
        backend = OnnxBackend(args.output, "cpu", checkpoint=args.model)
    except OnnxError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = parity_table(network, backend.sessions)
    print("\n| graph | output | frame, objects, memory frames, top_k | max abs error | max rel error |")
    print("|---|---|---|---|---|")
    for graph, output, ((h, w), k, t, top_k), error, relative in rows:
        print(f"| {graph} | {output} | {h}x{w}, {k}, {t}, {top_k} | {error:.2e} | {relative:.2e} |")
    worst = max(relative for *_, relative in rows)
    manifest["parity"] = dict(max_abs_error=max(r[3] for r in rows), max_rel_error=worst,
                              relative_to="the largest |PyTorch output| of each output", torch=torch.__version__)
    atomic_write_text(os.path.join(args.output, MANIFEST), json.dumps(manifest, indent=2) + "\n")
    print(f"\nlargest relative error {worst:.2e} (tolerance {args.tolerance:g})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())

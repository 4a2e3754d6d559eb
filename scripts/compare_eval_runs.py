"""Two eval_davis.py runs of one checkpoint on one DAVIS 2017 val set, compared: J&F of each
(the built-in DAVIS evaluator), their difference, the share of pixels with the same label, time.

    # PyTorch against ONNX Runtime (graphs of scripts/export_onnx.py), the quick start's held-out set:
    python scripts/compare_eval_runs.py --model quickstart_out/saves/quickstart_300.pth \\
        --davis_path quickstart_out/data/eval --second "--backend onnxruntime --onnx onnx_qs/"
    # float32 against --amp on a synthetic set (3 sequences of 10 frames, 240x432):
    python scripts/compare_eval_runs.py --model saves/imsfr.pth --synthetic 3 10 240 432 --second=--amp

Exit code 1 when |J&F difference| > --max_jf_difference or the label agreement is below
--min_agreement (defaults: the criterion the authors' code meets against itself with two
thread counts: 0.002 and 99.9 %), 2 when a run cannot start.
"""
import argparse
import json
import os
import shlex
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import eval_davis  # noqa: E402
from dataset.synthetic import make_davis_dataset  # noqa: E402
from util.davis_metrics import evaluate_davis  # noqa: E402


def read_labels(folder, sequences):
    """{(sequence, file): label array} of the result PNGs."""
    return {(seq, f): np.array(Image.open(os.path.join(folder, seq, f)))
            for seq in sequences for f in sorted(os.listdir(os.path.join(folder, seq))) if f.endswith(".png")}


def compare_runs(model, davis_root, runs, device=None, output=None):
    """Run eval_davis.py once per (name, extra flags) of ``runs`` on ``davis_root`` (holds trainval/)
    into ``output``/<name> (default: a temporary folder) and compare the first two:
    {name: {j_and_f, j, f, seconds}, label_agreement, j_and_f_difference (second - first)}."""
    with tempfile.TemporaryDirectory() as tmp:
        output = output or tmp
        trainval = os.path.join(davis_root, "trainval")
        with open(os.path.join(trainval, "ImageSets", "2017", "val.txt")) as f:
            sequences = [line.strip() for line in f if line.strip()]
        result, labels = {}, {}
        for name, flags in runs:
            folder = os.path.join(output, name)
            argv = ["--davis_path", davis_root, "--model", model, "--output", folder, "--no_eval", "--overwrite"]
            argv += (["--device", str(device)] if device else []) + list(flags)
            start = time.perf_counter()
            code = eval_davis.main(argv)
            seconds = time.perf_counter() - start
            if code:
                raise RuntimeError(f"eval_davis.py {shlex.join(argv)} exited with {code}")
            table = evaluate_davis(trainval, folder, "2017", "val", workers=1).global_table
            labels[name] = read_labels(folder, sequences)
            result[name] = dict(flags=list(flags), seconds=seconds, j_and_f=table["J&F-Mean"], j=table["J-Mean"],
                                f=table["F-Mean"])
    first, second = (name for name, _ in runs[:2])
    same = sum(int((labels[first][k] == labels[second][k]).sum()) for k in labels[first])
    total = sum(v.size for v in labels[first].values())
    result.update(runs=[first, second], sequences=len(sequences), label_agreement=same / total,
                  j_and_f_difference=result[second]["j_and_f"] - result[first]["j_and_f"])
    return result


def synthetic_davis(folder, num, frames, height, width):
    """A synthetic DAVIS 2017 val set (dataset/synthetic.py) under ``folder``; returns its root."""
    make_davis_dataset(os.path.join(folder, "trainval"), num_sequences=num, num_frames=frames, size=(height, width),
                       splits=("val",))
    return folder


def format_comparison(result):
    """The comparison as a Markdown table and a closing line."""
    first, second = result["runs"]
    lines = ["| run | flags | J&F | J | F | s (eval_davis.py) |", "|---|---|---|---|---|---|"]
    for name in (first, second):
        r = result[name]
        lines.append(f"| {name} | {shlex.join(r['flags']) or '-'} | {r['j_and_f']:.4f} | {r['j']:.4f} | "
                     f"{r['f']:.4f} | {r['seconds']:.1f} |")
    lines.append(f"J&F difference ({second} - {first}) {result['j_and_f_difference']:+.4f}; label agreement "
                 f"{100 * result['label_agreement']:.3f} % of pixels ({result['sequences']} sequences)")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="network weights, the same for both runs")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--davis_path", help="DAVIS 2017 root (holds trainval/) whose val split is run")
    data.add_argument("--synthetic", type=int, nargs=4, metavar=("SEQUENCES", "FRAMES", "H", "W"),
                      help="run a synthetic val set of this size instead (dataset/synthetic.py)")
    parser.add_argument("--first", default="", help="eval_davis.py flags of the first run (default: none)")
    parser.add_argument("--second", required=True, help="eval_davis.py flags of the second run, e.g. "
                                                        "\"--backend onnxruntime --onnx DIR\" or --amp")
    parser.add_argument("--names", nargs=2, default=("first", "second"), help="names of the two runs")
    parser.add_argument("--device", default=None, help="cpu or cuda, both runs (default: eval_davis.py's)")
    parser.add_argument("--output", help="keep the results in <output>/<name> (default: a temporary folder)")
    parser.add_argument("--max_jf_difference", type=float, default=0.002)
    parser.add_argument("--min_agreement", type=float, default=0.999)
    parser.add_argument("--json", help="also write the comparison to this JSON file")
    args = parser.parse_args(argv)
    runs = [(args.names[0], shlex.split(args.first)), (args.names[1], shlex.split(args.second))]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.davis_path or synthetic_davis(os.path.join(tmp, "DAVIS"), *args.synthetic)
        try:
            result = compare_runs(args.model, root, runs, args.device, args.output)
        except (OSError, RuntimeError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    print(format_comparison(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    ok = abs(result["j_and_f_difference"]) <= args.max_jf_difference and result["label_agreement"] >= args.min_agreement
    print(f"{'within' if ok else 'OUTSIDE'} |J&F difference| <= {args.max_jf_difference:g} and label agreement "
          f">= {100 * args.min_agreement:g} %")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

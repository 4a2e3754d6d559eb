"""Segment your own video interactively in a local web app (Gradio): draw the first masks
(brush, eraser, or a box with a grabCut proposal), propagate forward and backward, correct
a frame and propagate again, export DAVIS-format palette PNGs and an overlay mp4.

    python interactive_demo.py --model saves/imsfr.pth --video clip.mp4
    python interactive_demo.py --model saves/imsfr.pth --images frames/ --device cpu --port 7861
    (on a remote GPU machine: ssh -L 7860:127.0.0.1:7860 user@gpu-box, then open http://127.0.0.1:7860)

The inference settings are eval_generic.py's (its preset, --size 480, --memory_budget 50);
the page can also open a video file (an upload, --max_upload_mb, kept under --workdir).
Exit codes: 0 stopped (Ctrl-C), 2 could not start (bad checkpoint, video, port in use).
"""
import argparse
import logging
import os
import socket
import sys
import tempfile

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from inference_core.video_runner import EXIT_SETUP  # noqa: E402
from interactive.session import Session, SessionError, load_core  # noqa: E402
from model.checkpoint import CheckpointError  # noqa: E402
from util.config import PRESETS, PROCESSING_SIZE  # noqa: E402

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def budget(text):
    """--memory_budget: a frame count or 'none'."""
    if text.lower() == "none":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a frame count or 'none', got {text!r}")
    return int(text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="network weights (state dict or training checkpoint)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--video", help="a video file to open (or open one in the page)")
    source.add_argument("--images", help="a folder of frames (.jpg/.png, sorted by name)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA if available)")
    parser.add_argument("--size", type=int, default=PROCESSING_SIZE["generic"],
                        help="work with the shorter side scaled down to this (-1: original; default %(default)s)")
    parser.add_argument("--memory_budget", type=budget, default=PRESETS["generic"].memory_budget,
                        help="long-term memory frames per object group, or 'none' (default: eval_generic.py's, "
                             "%(default)s)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="default: %(default)s")
    parser.add_argument("--workdir", default=None,
                        help="frame cache, masks, uploads and downloads (default: a new temporary folder)")
    parser.add_argument("--output", default=None, help="export folder (default: <workdir>/export/<video>)")
    parser.add_argument("--max_upload_mb", type=int, default=500, help="largest video upload (default: %(default)s)")
    return parser.parse_args(argv)


def port_free(host, port):
    """True if ``host``:``port`` can be bound now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own requests
    log = logging.getLogger("imsfr.interactive")
    if args.host not in LOCAL_HOSTS:
        log.warning("listening on %s: anyone who can reach this machine on port %d can use the demo and read "
                    "and write files as you; prefer the default 127.0.0.1 and an SSH tunnel", args.host, args.port)
    if not port_free(args.host, args.port):
        print(f"error: port {args.port} on {args.host} is in use (another demo?); choose another with --port",
              file=sys.stderr)
        return EXIT_SETUP
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="imsfr-demo-"))
    try:
        os.makedirs(workdir, exist_ok=True)
        core = load_core(args.model, args.device, args.memory_budget)
        video = args.video or args.images
        session = Session(core, video=args.video, images=args.images, workdir=workdir, size=args.size) \
            if video else None
    except (CheckpointError, SessionError, ValueError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_SETUP
    from interactive.app import DemoApp, launch  # gradio is imported here only: bad flags fail fast

    app = DemoApp(core, session, workdir=workdir, output=args.output, size=args.size,
                  max_upload_mb=args.max_upload_mb, model=args.model, device=args.device,
                  memory_budget=args.memory_budget)
    log.info("work folder %s; open http://%s:%d", workdir, "127.0.0.1" if args.host in LOCAL_HOSTS else args.host,
             args.port)
    launch(app, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())

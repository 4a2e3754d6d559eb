"""Segment your own video interactively in a local web app (Gradio): draw the first masks on one canvas
(brush, eraser, click to mask, box), propagate forward and backward while watching each frame, correct
a frame and propagate again, export DAVIS-format palette PNGs and an overlay mp4. Every stroke is saved
when it is made; started again on the same video and work folder, the demo resumes where it was.

    python interactive_demo.py --model saves/imsfr.pth --video clip.mp4              # resumes, if any
    python interactive_demo.py --model saves/imsfr.pth --video clip.mp4 --new        # a new session
    python interactive_demo.py --model saves/imsfr.pth --frames frames/ --device cpu --port 7861
    (on a remote GPU machine: ssh -L 7860:127.0.0.1:7860 user@gpu-box, then open http://127.0.0.1:7860)

The inference settings are eval_generic.py's (its preset, --size 480, --memory_budget 50). Sessions,
uploads, exports and Gradio's own files live under --workdir (default ./demo_work); nothing is left
in the system's temporary folder. Exit codes: 0 stopped (Ctrl-C or SIGTERM: a running propagation
stops after its frame), 2 could not start (bad checkpoint, video or session folder, port in use).
"""
import argparse
import logging
import os
import shutil
import signal
import sys
import threading

from inference_core.video_runner import EXIT_SETUP  # torch, but not yet torchvision (it makes a temporary folder)
from util.config import PRECISIONS, PRESETS, PROCESSING_SIZE
from util.distributed import port_is_free

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
TEMPORARY = ".tmp"  # under --workdir: Gradio's copies of uploads and downloads, torch's cache; removed at the end


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
    source.add_argument("--frames", "--images", dest="frames", help="a folder of frames (.jpg/.png, sorted by name)")
    parser.add_argument("--new", action="store_true",
                        help="start a new session of the video instead of resuming its last one in --workdir")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA if available)")
    parser.add_argument("--size", type=int, default=PROCESSING_SIZE["generic"],
                        help="work with the shorter side scaled down to this (-1: original; default %(default)s)")
    parser.add_argument("--memory_budget", type=budget, default=PRESETS["generic"].memory_budget,
                        help="long-term memory frames per object group, or 'none' (default: eval_generic.py's, "
                             "%(default)s)")
    parser.add_argument("--precision", choices=PRECISIONS, default=PRESETS["generic"].precision,
                        help="what the network computes in: fp32, bf16, fp16, or auto (fp16 on CUDA, bf16 on CPUs "
                             "with native bfloat16, else fp32; docs/speed.md; default: %(default)s)")
    parser.add_argument("--amp", dest="precision", action="store_const", const="amp",
                        help="the reference's --amp: --precision fp16 on CUDA, bf16 elsewhere")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="default: %(default)s")
    parser.add_argument("--workdir", default="demo_work",
                        help="sessions (annotations, masks, frame cache), uploads, exports and downloads "
                             "(default: %(default)s)")
    parser.add_argument("--output", default=None, help="export folder (default: <workdir>/export/<video>)")
    parser.add_argument("--max_upload_mb", type=int, default=500, help="largest video upload (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own requests
    log = logging.getLogger("imsfr.interactive")
    if args.host not in LOCAL_HOSTS:
        log.warning("listening on %s: anyone who can reach this machine on port %d can use the demo and read "
                    "and write files as you; prefer the default 127.0.0.1 and an SSH tunnel", args.host, args.port)
    if not port_is_free(args.port, args.host):
        print(f"error: port {args.port} on {args.host} is in use (another demo?); choose another with --port",
              file=sys.stderr)
        return EXIT_SETUP
    workdir = os.path.abspath(args.workdir)
    # What Gradio and torch keep as temporary files goes inside the work folder (not the system's temporary
    # folder), set before they are imported; a killed demo's leftovers are removed first.
    temporary = os.path.join(workdir, TEMPORARY)
    shutil.rmtree(temporary, ignore_errors=True)
    os.environ["GRADIO_TEMP_DIR"] = temporary
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(temporary, "torch")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from interactive.session import Session, SessionError, load_core
    from model.checkpoint import CheckpointError
    try:
        os.makedirs(workdir, exist_ok=True)
        core = load_core(args.model, args.device, args.memory_budget, args.precision)
        session = Session(core, video=args.video, images=args.frames, workdir=workdir, size=args.size,
                          new=args.new) if args.video or args.frames else None
        if session is not None:
            session.frame(session.shown)  # the frame the page opens on must decode
    except (CheckpointError, SessionError, ValueError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_SETUP
    from interactive.app import DemoApp  # gradio is imported here only: bad flags fail fast
    from interactive.page import launch

    app = DemoApp(core, session, workdir=workdir, output=args.output, size=args.size,
                  max_upload_mb=args.max_upload_mb, model=args.model, device=args.device,
                  memory_budget=args.memory_budget, speed=dict(precision=args.precision))
    if session is not None:
        log.info("%s session %s of %s (%d annotated frames)", "resumed" if session.resumed else "new",
                 session.folder, session.input_path, len(session.annotated_frames()))
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    page = launch(app, args.host, args.port)
    log.info("work folder %s; open http://%s:%d", workdir, "127.0.0.1" if args.host in LOCAL_HOSTS else args.host,
             args.port)
    try:
        while not stop.wait(0.5):
            pass
        log.info("stopping: a running propagation ends after its frame")
        app.shutdown()
    finally:
        page.close()
        shutil.rmtree(temporary, ignore_errors=True)
    if app.session is not None:
        log.info("stopped; the session is kept in %s", app.session.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())

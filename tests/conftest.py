import pytest
import torch


@pytest.fixture(autouse=True)
def _few_threads():
    # CI machines have 2 cores; oversubscription makes the suite slower, not faster.
    torch.set_num_threads(2)
    yield


# ----------------------------------------------------------------------------- evaluation scripts
@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A random-init ResNet-18 network's weights, saved as the scripts' --model."""
    from model.network import IMSFR
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "net.pth"
    torch.save(IMSFR(pretrained=False, key_backbone="resnet18").state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def weights_network(weights):
    from model.checkpoint import build_network
    return build_network(weights, "cpu")


@pytest.fixture
def cached_network(weights, weights_network, monkeypatch):
    """The scripts load their weights through build_network: read the test weights only once
    (use with ``pytestmark = pytest.mark.usefixtures("cached_network")``)."""
    from inference_core import build
    from model.checkpoint import build_network

    def build_cached(path, device):
        return weights_network if path == weights and str(device) == "cpu" else build_network(path, device)

    monkeypatch.setattr(build, "build_network", build_cached)


# ----------------------------------------------------------------------------- inference core
@pytest.fixture(scope="module")
def network():
    """A random-init multi-object network with a ResNet-18 key encoder, in eval mode."""
    from model.network import IMSFR
    torch.manual_seed(0)
    return IMSFR(single_object=False, pretrained=False, key_backbone="resnet18").eval()


# ----------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def davis_root(tmp_path_factory):
    """4 synthetic DAVIS-format videos (12 frames, 96x160, up to 2 objects) to train on."""
    from dataset.synthetic import make_davis_dataset
    root = tmp_path_factory.mktemp("davis")
    make_davis_dataset(root, num_sequences=4, num_frames=12, size=(96, 160), max_objects=2, seed=0,
                       splits=("train", "val"))
    return str(root)


# ----------------------------------------------------------------------------- interactive demo
@pytest.fixture(scope="session")
def tracker_weights(request, tmp_path_factory):
    """A network that tracks the synthetic objects (tests/helpers_interactive.py: train.py's code path and
    the quick start's recipe made smaller). Trained once and kept in pytest's cache under the digest of
    everything that makes it (the code of train.py, training/, model/, dataset/, util/, the helper, the
    settings, torch's version), so a later run with the same code reuses it; ``--cache-clear`` retrains."""
    from tests.helpers_interactive import tracker_digest, train_tracker
    from tests.helpers_capture import progress_to_current_streams
    digest = tracker_digest()
    folder = request.config.cache.mkdir(f"tracker-{digest}")
    path = folder / "tracker.pth"
    if path.is_file():
        return str(path)
    with progress_to_current_streams():
        trained, seconds = train_tracker(str(tmp_path_factory.mktemp("tracker")))
    print(f"tracker trained in {seconds:.0f} s")
    from util.fileio import atomic_write_bytes
    atomic_write_bytes(path, open(trained, "rb").read())
    return str(path)

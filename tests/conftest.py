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
    from inference_core import video_runner
    from model.checkpoint import build_network

    def build(path, device):
        return weights_network if path == weights and str(device) == "cpu" else build_network(path, device)

    monkeypatch.setattr(video_runner, "build_network", build)


# ----------------------------------------------------------------------------- inference core
@pytest.fixture(scope="module")
def network():
    """A random-init multi-object network with a ResNet-18 key encoder, in eval mode."""
    from model.network import IMSFR
    torch.manual_seed(0)
    return IMSFR(single_object=False, pretrained=False, key_backbone="resnet18").eval()

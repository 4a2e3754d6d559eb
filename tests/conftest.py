import pytest
import torch


@pytest.fixture(autouse=True)
def _few_threads():
    # CI machines have 2 cores; oversubscription makes the suite slower, not faster.
    torch.set_num_threads(2)
    yield

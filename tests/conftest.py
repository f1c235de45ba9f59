"""Shared test settings: tiny models run fastest (and least noisily on a shared 2-core box) on one thread."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)

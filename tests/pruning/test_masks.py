"""Per-layer analysis: sparsity, output units with no incoming weight, input units with no outgoing weight."""

import pytest
import torch

from prunekit.pruning.masks import layer_report, units_without_inputs, units_without_outputs


def test_linear_units_and_inputs():
    mask = torch.ones(4, 6, dtype=torch.bool)  # Linear(6 -> 4): rows are output units, columns inputs
    mask[1] = False  # unit 1 receives nothing
    mask[:, 2] = False  # input 2 feeds nothing
    mask[:, 5] = False
    mask[3, :5] = False  # unit 3 keeps only input 5... which is pruned too: it has no input left
    assert units_without_inputs(mask).tolist() == [False, True, False, True]
    assert units_without_outputs(mask).tolist() == [False, False, True, False, False, True]
    (row,) = layer_report({"fc.weight": mask})
    assert row == {
        "name": "fc.weight",
        "shape": [4, 6],
        "numel": 24,
        "sparsity": pytest.approx(1 - int(mask.sum()) / 24, abs=1e-6),
        "units_pruned": 0.5,
        "inputs_unused": pytest.approx(2 / 6, abs=1e-6),
    }


def test_conv_filters_and_channels():
    mask = torch.ones(5, 3, 3, 3, dtype=torch.bool)  # Conv2d(3 -> 5, 3x3)
    mask[0] = False  # filter 0 is gone
    mask[2, :, 1:, :] = False  # filter 2 keeps its first kernel row: still alive
    mask[:, 1] = False  # input channel 1 is read by no filter
    mask[4, 0, 0, 0] = False
    assert units_without_inputs(mask).tolist() == [True, False, False, False, False]
    assert units_without_outputs(mask).tolist() == [False, True, False]
    (row,) = layer_report({"conv.weight": mask})
    assert row["units_pruned"] == pytest.approx(0.2) and row["inputs_unused"] == pytest.approx(1 / 3, abs=1e-6)
    assert row["sparsity"] == pytest.approx(1 - int(mask.sum()) / 135, abs=1e-6)


def test_dense_and_empty_layers():
    dense, empty = torch.ones(3, 2, dtype=torch.bool), torch.zeros(3, 2, dtype=torch.bool)
    rows = layer_report({"a": dense, "b": empty})
    assert [(r["sparsity"], r["units_pruned"], r["inputs_unused"]) for r in rows] == [(0.0, 0.0, 0.0), (1.0, 1.0, 1.0)]

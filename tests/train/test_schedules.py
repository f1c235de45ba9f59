"""The fine-tuning lr default, its warning, and the window of the schedule that learning-rate rewinding replays,
against values worked out by hand from the papers' definitions."""

import pytest

from prunekit.config import TrainConfig
from prunekit.train.optim import finetune_lr, finetune_warning, replay_window


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        (TrainConfig(lr=0.0012), 0.0012),  # constant: the lr itself
        (TrainConfig(lr=0.1, lr_schedule="step", epochs=160, milestones=(80, 120)), 0.001),  # 0.1 * 0.1^2
        (TrainConfig(lr=0.1, lr_schedule="step", epochs=30, milestones=(10, 20, 25), gamma=0.5), 0.0125),  # 0.1/8
        (TrainConfig(lr=0.1, lr_schedule="step", epochs=30), 0.1),  # no milestone: never decays
        (TrainConfig(lr=0.0012, lr_schedule="cosine", epochs=6), 1.2e-5),  # 1/100 of the base, not the floor 0
        (TrainConfig(lr=0.1, lr_schedule="cosine", epochs=10, warmup_epochs=2), 0.001),
    ],
)
def test_default_finetune_lr(train, expected):
    assert finetune_lr(train) == pytest.approx(expected, rel=1e-12)
    assert finetune_lr(train, 0.0123) == 0.0123  # prune.finetune_lr wins
    assert finetune_warning(train) is None


def test_warning_when_the_finetune_lr_cannot_train():
    cosine = TrainConfig(lr=0.1, lr_schedule="cosine", epochs=10)
    assert finetune_warning(cosine, 1e-4) is not None  # the old default: the cosine floor, lr / 1000
    assert "prune.finetune_lr" in finetune_warning(cosine, 1e-4)
    assert finetune_warning(cosine, 1.01e-4) is None
    step4 = TrainConfig(lr=0.1, lr_schedule="step", epochs=40, milestones=(10, 20, 30, 35))  # 0.1 * 1e-4
    assert "default for a step schedule" in finetune_warning(step4)


@pytest.mark.parametrize(
    ("epochs", "retrain", "squeeze", "expected"),
    [
        (10, 10, False, (0, 1.0)),  # the whole schedule at its own pace
        (10, 3, False, (7, 1.0)),  # Renda et al.: the lrs of the last 3 of 10 epochs
        (10, 3, True, (0, 10 / 3)),  # AIMP-style: all 10 epochs squeezed into 3
        (6, 12, False, (0, 1.0)),  # longer than the schedule: from its start, then past its end
        (6, 0, False, (0, 1.0)),
    ],
)
def test_replay_window(epochs, retrain, squeeze, expected):
    start, pace = replay_window(epochs, retrain, squeeze)
    assert start == expected[0] and pace == pytest.approx(expected[1], rel=1e-12)

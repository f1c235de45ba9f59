"""The image-folder dataset: layout, decoding, limits, one-line errors, and a run through the DataLoader Task."""

import numpy as np
import pytest
import torch
from PIL import Image

import prunekit
from prunekit.common.errors import UserError
from prunekit.config import DataConfig
from prunekit.data.imagefolder import image_folder, read_image
from prunekit.tasks.from_config import build_task
from tests.helpers import tiny


def draw(path, value, size=(12, 10), fmt="PNG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((size[1], size[0], 3), value, dtype=np.uint8)
    pixels[0, 0] = (255 - value, 0, value)  # not uniform, so a resize has something to do
    Image.fromarray(pixels).save(path, fmt)


@pytest.fixture
def folder(tmp_path):
    for i in range(6):
        draw(tmp_path / "cats" / f"{i}.png", 30 + i)
        draw(tmp_path / "dogs" / "nested" / f"{i}.JPG", 200 - i, fmt="JPEG")
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    return tmp_path


def cfg(root, **kw):
    return DataConfig(name="imagefolder", root=str(root), image_size=8, val_size=2, **kw)


def test_classes_are_sorted_subfolders_and_images_are_resized_and_normalised(folder):
    splits = image_folder(cfg(folder), seed=0)
    assert splits["num_classes"] == 2 and splits["input_shape"] == (3, 8, 8)
    assert len(splits["train"]) == 10 and len(splits["val"]) == 2 and splits["test"] is None
    labels = sorted(splits["train"].labels + splits["val"].labels)
    assert labels == [0] * 6 + [1] * 6  # cats 0, dogs 1 (the .txt is not an image)
    x, y = splits["train"][0]
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32
    raw = read_image(splits["train"].files[0], 8, False, 10**6)
    assert torch.allclose(x, (raw - 0.5) / 0.5)
    gray = read_image(splits["train"].files[0], 8, True, 10**6)
    assert gray.shape == (1, 8, 8)


def test_train_val_test_folders(tmp_path):
    for split in ("train", "val", "test"):
        for c in ("a", "b"):
            draw(tmp_path / split / c / "0.png", 10)
    splits = image_folder(cfg(tmp_path), seed=0)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [2, 2, 2]
    draw(tmp_path / "test" / "zebra" / "0.png", 10)
    with pytest.raises(UserError, match="classes \\['zebra'\\] that the training folder does not have"):
        image_folder(cfg(tmp_path), seed=0)


def test_limits_on_file_count_and_pixels(folder):
    with pytest.raises(UserError, match="data.max_files"):
        image_folder(cfg(folder, max_files=5), seed=0)
    splits = image_folder(cfg(folder, max_pixels=100), seed=0)  # 12 x 10 = 120 pixels each
    with pytest.raises(UserError, match="has 12x10 pixels, more than data.max_pixels \\(100\\)"):
        splits["train"][0]


@pytest.mark.parametrize("workers", [0, 1])
def test_a_bad_image_is_named_in_one_line_through_the_dataloader(folder, workers):
    (folder / "cats" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    config = tiny(**{"data": cfg(folder, workers=workers).__dict__ | {"shape": [3, 8, 8]}})
    task = build_task(config.replace(**{"data.val_size": 0, "train.batch_size": 4}))
    with pytest.raises(UserError) as info:
        list(task._batches("train"))
    message = str(info.value)
    assert "\n" not in message and message.startswith("imagefolder: cannot read image ") and "3.png" in message


def test_a_run_on_an_image_folder(folder, tmp_path):
    overrides = {
        "data.name": "imagefolder",
        "data.root": str(folder),
        "data.image_size": 8,
        "data.val_size": 2,
        "model.name": "conv2",
        "prune.rounds": 1,
        "train.batch_size": 4,
    }
    summary = prunekit.run(tiny(**overrides), tmp_path / "run")
    assert summary["dataset"] == "imagefolder" and summary["arch"]["input_shape"] == [3, 8, 8]
    assert summary["arch"]["num_classes"] == 2 and summary["rounds"][1]["sparsity"] == pytest.approx(0.2, abs=1e-3)
    assert summary["rounds"][1]["test_accuracy"] is None  # no test folder: no test split

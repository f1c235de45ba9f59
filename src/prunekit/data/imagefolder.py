"""An image-folder dataset (one subfolder per class, PNG/JPEG read by Pillow), loaded image by image through a
DataLoader, so it need not fit in memory.

Layout: `data.root/<class>/**/*.png|jpg|jpeg`, the validation split carved from it (min(data.val_size, n // 4)
images, seeded); or `data.root/train/<class>/...` with optional `val/` and `test/` folders of the same classes.
Classes are the sorted subfolder names. Each image is converted to RGB (or grayscale), its shorter side resized to
`data.image_size` (bilinear), centre-cropped to a square, scaled to [0, 1] and normalised with `data.mean`/`data.std`
(0.5 each by default). Input is hostile until checked: at most `data.max_files` image files, and an image's pixel
count is read from its header and refused above `data.max_pixels` before it is decoded (decompression bombs); an
unreadable image is a one-line error that names the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from prunekit.common.errors import UserError
from prunekit.common.safety import one_line
from prunekit.config import DataConfig
from prunekit.data.dataset import split_indices

EXTENSIONS = (".png", ".jpg", ".jpeg")


def scan(root: Path, cfg: DataConfig, classes: list[str] | None = None) -> tuple[list[str], list[Path], list[int]]:
    """(class names, image paths, labels) under `root`, in a fixed order; `classes` given: those of the training set."""
    if not root.is_dir():
        raise UserError(f"imagefolder: {root} is not a directory (data.root)")
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not found:
        raise UserError(f"imagefolder: {root} has no class subfolders (expected {root}/<class>/<image>.png)")
    names = classes if classes is not None else found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise UserError(f"imagefolder: {root} has classes {unknown[:3]} that the training folder does not have")
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(names):
        if name not in found:
            continue
        images = _images(root / name, cfg.max_files - len(files))
        if not images and classes is None:
            raise UserError(f"imagefolder: class folder {root / name} has no PNG or JPEG image")
        files += images
        labels += [label] * len(images)
    return names, files, labels


def _images(folder: Path, room: int) -> list[Path]:
    out = []
    for directory, dirs, names in os.walk(folder):  # symlinked folders are not followed
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.lower().endswith(EXTENSIONS) and not name.startswith("."):
                out.append(Path(directory) / name)
                if len(out) > room:
                    raise UserError(f"imagefolder: {folder} takes the image count past data.max_files; raise it")
    return out


class ImageFolder(torch.utils.data.Dataset):
    """(image tensor [C, S, S], label) pairs, decoded when asked for."""

    def __init__(self, files: list[Path], labels: list[int], cfg: DataConfig) -> None:
        self.files, self.labels, self.cfg = files, labels, cfg
        channels = 1 if cfg.grayscale else 3
        self.mean = torch.tensor(_per_channel(cfg.mean, channels)).view(-1, 1, 1)
        self.std = torch.tensor(_per_channel(cfg.std, channels)).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        x = read_image(self.files[index], self.cfg.image_size, self.cfg.grayscale, self.cfg.max_pixels)
        return (x - self.mean) / self.std, self.labels[index]


def _per_channel(values: tuple[float, ...], channels: int) -> list[float]:
    return [0.5] * channels if not values else list(values) * channels if len(values) == 1 else list(values)


def read_image(path: Path, size: int, grayscale: bool, max_pixels: int) -> Tensor:
    """One image as float32 [C, size, size] in [0, 1]: shorter side resized to `size`, centre-cropped."""
    mode = "L" if grayscale else "RGB"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the pixel check below is the guard
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise UserError(
                        f"imagefolder: {path} has {width}x{height} pixels, more than data.max_pixels ({max_pixels})"
                    )
                img.draft(mode, (size, size))  # JPEG: decode at a reduced scale when that is still large enough
                img = img.convert(mode)
                scale = size / min(img.size)
                resized = (max(size, round(img.size[0] * scale)), max(size, round(img.size[1] * scale)))
                img = img.resize(resized, Image.Resampling.BILINEAR)
                left, top = (resized[0] - size) // 2, (resized[1] - size) // 2
                pixels = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except UserError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # Pillow's decode errors
        raise UserError(f"imagefolder: cannot read image {path}: {one_line(exc)}") from None
    x = torch.from_numpy(pixels.copy()).float().div_(255.0)
    return x[None] if grayscale else x.permute(2, 0, 1).contiguous()


def image_folder(cfg: DataConfig, seed: int) -> dict[str, ImageFolder | int | tuple[int, ...] | None]:
    """The splits of `data.root` as datasets, with num_classes and input_shape."""
    if cfg.root is None:
        raise UserError("imagefolder needs data.root: a folder with one subfolder of images per class")
    root = Path(cfg.root)
    nested = (root / "train").is_dir()
    classes, files, labels = scan(root / "train" if nested else root, cfg)
    if nested and (root / "val").is_dir():
        _, val_files, val_labels = scan(root / "val", cfg, classes)
        train = ImageFolder(files, labels, cfg)
        val = ImageFolder(val_files, val_labels, cfg)
    else:
        rest, held = split_indices(len(files), min(cfg.val_size, len(files) // 4), seed, "the image folder")
        train = ImageFolder([files[i] for i in rest], [labels[i] for i in rest], cfg)
        val = ImageFolder([files[i] for i in held], [labels[i] for i in held], cfg) if len(held) else None
    test = None
    if nested and (root / "test").is_dir():
        test = ImageFolder(*scan(root / "test", cfg, classes)[1:], cfg)
    channels = 1 if cfg.grayscale else 3
    return {
        "train": train,
        "val": val,
        "test": test,
        "num_classes": len(classes),
        "input_shape": (channels, cfg.image_size, cfg.image_size),
    }

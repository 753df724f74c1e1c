"""Whether ``split.test_size`` / ``split.val_size`` can split these labels, and which key to change if not.

The split's limits depend on the data (how many images, how many per class), so the schema cannot
check them; ``split_indices`` calls these checks before scikit-learn would fail with a traceback. Each
message blames the key that is the cause and proposes a value that was checked to work, so the advice
can always be followed; where the cause is a class with too few images (a folder of your own images),
the message names the class and the number of images it needs.
"""

from __future__ import annotations

import math

import numpy as np

from digitflow.core.errors import ParamsError

# A stratified validation split needs two images of each class among the non-test images: one for
# training and one for validation.
MIN_PER_CLASS = 2


def _round_up(value: float) -> float:
    """``value`` rounded up to 3 significant digits, so the advice stays on the safe side."""
    scale = 10 ** (2 - math.floor(math.log10(abs(value))))
    return math.ceil(value * scale) / scale


def _round_down(value: float) -> float:
    scale = 10 ** (2 - math.floor(math.log10(abs(value))))
    return math.floor(value * scale) / scale


def _test_share(n_images: int, n_test: int, class_size: int) -> tuple[int, int]:
    """The fewest and most test images a stratified split of ``n_test`` of ``n_images`` can give a class
    of ``class_size``: scikit-learn gives each class the whole part of its share, and one more to some."""
    fewest = class_size * n_test // n_images
    return fewest, min(class_size, fewest + 1)


def images_needed_per_class(n_images: int, test_size: float) -> int:
    """The fewest images of a class that a stratified split is sure to give one test image and, of the
    rest, two for training and validation."""
    n_test = math.ceil(test_size * n_images)
    size = MIN_PER_CLASS + 1
    while size <= n_images:
        fewest, most = _test_share(n_images, n_test, size)
        if fewest >= 1 and size - most >= MIN_PER_CLASS:
            return size
        size += 1
    return size


def check_class_sizes(labels: np.ndarray, class_names: tuple[str, ...], test_size: float) -> None:
    """Refuse, by name, the classes too small for a stratified split at ``test_size``: each needs a test
    image (or its test metrics mean nothing) and two of the rest (scikit-learn's stratified validation
    split refuses fewer)."""
    counts = np.bincount(labels, minlength=len(class_names))
    needed = images_needed_per_class(len(labels), test_size)
    small = [f"{class_names[index]!r} ({counts[index]})" for index in np.flatnonzero(counts < needed)]
    if small:
        which = "this class has" if len(small) == 1 else "these classes have"
        raise ParamsError(
            f"too few images: with split.test_size = {test_size}, each class needs at least {needed} images (one or "
            f"more to test, two of the rest to train and validate), and {which} fewer: {', '.join(small)}. "
            "Add images of them, or leave their folders out of data.folder"
        )


def check_test_size(n_images: int, n_classes: int, test_size: float, stratified: bool) -> None:
    """A stratified test part needs at least one image per class."""
    n_test = math.ceil(test_size * n_images)
    if stratified and n_test < n_classes:
        raise ParamsError(
            f"split.test_size = {test_size} gives {n_test} of {n_images} images, fewer than the {n_classes} "
            f"classes a stratified split needs; raise split.test_size to at least "
            f"{_round_up(n_classes / n_images)}"
        )


def _rest_is_usable(rest_labels: np.ndarray, n_classes: int) -> bool:
    counts = np.bincount(rest_labels, minlength=0)
    present = counts[counts > 0]
    return len(rest_labels) >= 2 * n_classes and len(present) == n_classes and present.min() >= MIN_PER_CLASS


def _val_fits(n_rest: int, val_size: float, n_classes: int) -> bool:
    n_val = math.ceil(val_size * n_rest)
    return n_val >= n_classes and n_rest - n_val >= n_classes


def _largest_usable_test_size(
    labels: np.ndarray, test_size: float, val_size: float, seed: int, stratified: bool
) -> float | None:
    """The largest test_size (two decimals, below ``test_size``) whose remaining images can be split
    with the current ``val_size``: following the advice must not just move the error to val_size."""
    from sklearn.model_selection import train_test_split

    n_classes = len(np.unique(labels))
    for hundredths in range(min(math.floor(test_size * 100), 99), 0, -1):
        candidate = hundredths / 100
        if stratified and math.ceil(candidate * len(labels)) < n_classes:
            return None
        rest = train_test_split(labels, test_size=candidate, random_state=seed, stratify=labels if stratified else None)
        if _rest_is_usable(rest[0], n_classes) and _val_fits(len(rest[0]), val_size, n_classes):
            return candidate
    return None


def check_rest(
    labels: np.ndarray,
    rest: np.ndarray,
    val_size: float,
    n_classes: int,
    test_size: float | None = None,
    seed: int = 0,
    stratified: bool = False,
    class_names: tuple[str, ...] | None = None,
) -> None:
    """Check that the non-test images ``rest`` can be split into training and validation.

    ``test_size`` is None when the dataset has a published test set: then the remaining images are
    fixed and only ``val_size`` can be blamed.
    """
    rest_labels = labels[rest]
    n_rest = len(rest)
    if not _rest_is_usable(rest_labels, n_classes):
        counts = np.bincount(rest_labels, minlength=n_classes)
        fewest = int(counts.argmin())
        name = class_names[fewest] if class_names else str(fewest)
        what = (
            f"leaves {n_rest} of {len(labels)} images for training and validation, with {counts[fewest]} of "
            f"class {name!r}; a stratified validation split needs at least {MIN_PER_CLASS} of each of the "
            f"{n_classes} classes there"
        )
        if test_size is None:
            raise ParamsError(f"the dataset's published training part {what}; it cannot be split")
        usable = _largest_usable_test_size(labels, test_size, val_size, seed, stratified)
        advice = f"lower split.test_size to at most {usable}" if usable else "lower split.test_size"
        raise ParamsError(f"split.test_size = {test_size} {what}; {advice}")
    n_val = math.ceil(val_size * n_rest)
    if n_val < n_classes:
        raise ParamsError(
            f"split.val_size = {val_size} gives {n_val} of {n_rest} images, fewer than the {n_classes} classes "
            f"a stratified split needs; raise split.val_size to at least {_round_up(n_classes / n_rest)}"
        )
    if n_rest - n_val < n_classes:
        raise ParamsError(
            f"split.val_size = {val_size} leaves {n_rest - n_val} of {n_rest} images for training, fewer than "
            f"the {n_classes} classes; lower split.val_size to at most {_round_down((n_rest - n_classes) / n_rest)}"
        )

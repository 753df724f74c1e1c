"""Data checks before training: what the images are, and what would make a model's numbers lie.

Run on every dataset by the ``check`` stage (after the split, so leakage can be seen) and written to
``reports/data_check.json``, which the report shows and each training run logs to MLflow:

- **duplicates within a class**: the same picture twice (the model sees it twice; reported);
- **the same picture under two classes**: a picture cannot be both; refused for a folder of your own
  images by ``fetch`` (``refuse_cross_class_duplicates``, naming both paths), reported for digits and MNIST;
- **leakage**: a test image that is the same picture as a training or validation image (the test
  accuracy then measures memory; reported with the count);
- **class counts and imbalance**: per class and per part of the split; when the largest class has more
  than twice the smallest's images, ``class_weight: balanced`` is suggested;
- **sizes, modes and formats seen**, files left out (unreadable, outside any class folder) and pictures
  in which the recipe found no ink.

"The same picture" is equal hashes of decoded pixels: for a folder, SHA-256 of each picture as read,
upright and in RGBA (``image_folder.pixel_digest``), so the same picture in two files is found whatever
their bytes; for digits and MNIST, SHA-256 of each image's pixel values as the dataset stores them.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from digitflow.core.errors import DataError

# The largest class may have this many times the smallest's images before class weights are suggested.
IMBALANCE_RATIO = 2.0
EXAMPLES = 10  # groups or names listed per finding; the counts are always complete
LISTED_VALUES = 5  # sizes, modes, formats named in the findings; the JSON lists up to 50 with counts
BALANCED = "train_sklearn.class_weight: balanced and train_torch.class_weight: balanced"


def row_digests(features: np.ndarray) -> list[str]:
    """SHA-256 of each row's pixel values (digits, MNIST: the images as the dataset stores them)."""
    return [hashlib.sha256(np.ascontiguousarray(row).tobytes()).hexdigest() for row in features]


def duplicate_groups(digests: Sequence[str]) -> list[list[int]]:
    """Indices of the images sharing a hash, one list per hash held by more than one, in first-seen order."""
    seen: dict[str, list[int]] = defaultdict(list)
    for index, digest in enumerate(digests):
        seen[digest].append(index)
    return [indices for indices in seen.values() if len(indices) > 1]


def _across_classes(groups: list[list[int]], labels: np.ndarray) -> list[list[int]]:
    return [group for group in groups if len(set(labels[group].tolist())) > 1]


def refuse_cross_class_duplicates(
    digests: Sequence[str], labels: np.ndarray, names: Sequence[str], class_names: Sequence[str]
) -> None:
    """A folder's picture filed under two classes makes one of its labels wrong: refused, naming the files."""
    labels = np.asarray(labels)
    clashes = _across_classes(duplicate_groups(digests), labels)
    if not clashes:
        return
    lines = [" = ".join(names[index] for index in group) for group in clashes[:EXAMPLES]]
    more = f"\n  ... and {len(clashes) - EXAMPLES} more" if len(clashes) > EXAMPLES else ""
    raise DataError(
        f"{len(clashes)} picture(s) are filed under two or more classes (the same decoded pixels):\n  "
        + "\n  ".join(lines)
        + more
        + "\nA picture has one class: delete the copy in the wrong class's folder"
    )


def _named_groups(groups: list[list[int]], names: Sequence[str]) -> list[list[str]]:
    return [[names[index] for index in group] for group in groups[:EXAMPLES]]


def leakage(digests: Sequence[str], parts: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """How many images of a later part of the split are the same picture as one of an earlier part."""
    digest_array = np.asarray(digests)
    in_part = {part: set(digest_array[rows].tolist()) for part, rows in parts.items()}
    found: dict[str, Any] = {}
    for later, earlier in (("test", "train"), ("test", "val"), ("val", "train")):
        rows = parts[later]
        shared = [int(row) for row in rows if digest_array[row] in in_part[earlier]]
        found[f"{later}_in_{earlier}"] = len(shared)
        found[f"{later}_in_{earlier}_examples"] = shared[:EXAMPLES]
    return found


def class_table(labels: np.ndarray, class_names: Sequence[str], parts: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Images per class, in all and in each part of the split."""
    counts = np.bincount(labels, minlength=len(class_names))
    by_part = {part: np.bincount(labels[rows], minlength=len(class_names)) for part, rows in parts.items()}
    return {
        name: {"images": int(counts[index]), **{part: int(by_part[part][index]) for part in parts}}
        for index, name in enumerate(class_names)
    }


def imbalance(classes: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """The largest and smallest class, their ratio, and whether class weights are worth setting."""
    largest = max(classes, key=lambda name: classes[name]["images"])
    smallest = min(classes, key=lambda name: classes[name]["images"])
    ratio = classes[largest]["images"] / max(1, classes[smallest]["images"])
    return {"largest": largest, "smallest": smallest, "ratio": round(ratio, 3), "unbalanced": ratio > IMBALANCE_RATIO}


def summarise(
    dataset: str,
    class_names: Sequence[str],
    labels: np.ndarray,
    digests: Sequence[str],
    names: Sequence[str],
    parts: Mapping[str, np.ndarray],
    seen: Mapping[str, Mapping[str, int]],
    hashing: str,
    left_out: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the checks found, as JSON-ready data, with ``findings``: one sentence per finding.

    ``names`` name each image in the findings (a folder's relative paths, ``image 12`` otherwise);
    ``seen`` counts what the images are (``sizes``, ``modes``, ``formats``: value -> images);
    ``left_out`` lists what never became an image (``unreadable``: (path, reason), ``outside_classes``,
    ``no_ink``: paths)."""
    labels = np.asarray(labels)
    groups = duplicate_groups(digests)
    across = _across_classes(groups, labels)
    within = [group for group in groups if group not in across]
    classes = class_table(labels, class_names, parts)
    balance = imbalance(classes)
    leaks = leakage(digests, parts)
    left_out = dict(left_out or {})
    summary: dict[str, Any] = {
        "dataset": dataset,
        "images": len(labels),
        "hash": hashing,
        "classes": classes,
        "imbalance": balance,
        "duplicates_within_class": {
            "groups": len(within),
            "extra_copies": sum(len(group) - 1 for group in within),
            "examples": _named_groups(within, names),
        },
        "duplicates_across_classes": {"groups": len(across), "examples": _named_groups(across, names)},
        "leakage": {
            **{key: value for key, value in leaks.items() if not key.endswith("_examples")},
            "test_in_train_examples": [names[row] for row in leaks["test_in_train_examples"]],
        },
        "seen": {key: dict(Counter(values).most_common(50)) for key, values in seen.items()},
        "seen_distinct": {key: len(set(values)) for key, values in seen.items()},
        "size_range": _size_range(seen.get(SIZES, [])),
        "unreadable_left_out": [{"path": path, "reason": reason} for path, reason in left_out.get("unreadable", [])],
        "outside_classes": list(left_out.get("outside_classes", [])),
        "no_ink": {"count": len(left_out.get("no_ink", [])), "examples": list(left_out.get("no_ink", []))[:EXAMPLES]},
    }
    summary["findings"] = findings(summary)
    return summary


SIZES = "sizes (width x height)"


def _size_range(sizes: Sequence[str]) -> list[str]:
    """The smallest and largest width and height among ``WxH`` sizes, as ``[WxH, WxH]``."""
    if not sizes:
        return []
    widths, heights = zip(*(tuple(int(side) for side in size.split("x")) for size in sizes), strict=True)
    return [f"{min(widths)}x{min(heights)}", f"{max(widths)}x{max(heights)}"]


def _described(key: str, counts: Mapping[str, int], distinct: int, size_range: Sequence[str]) -> str:
    """``modes L (127), RGB (33)``; many different values: how many, their range, the most common."""
    listed = ", ".join(f"{value} ({count})" for value, count in list(counts.items())[:LISTED_VALUES])
    if distinct <= LISTED_VALUES:
        return f"{key} {listed}"
    spread = f" from {size_range[0]} to {size_range[1]}" if key == SIZES and size_range else ""
    return f"{key}: {distinct} different{spread}, the most common {listed}"


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def findings(summary: Mapping[str, Any]) -> list[str]:
    """One plain sentence per finding, in the order a user should read them; the last says what was seen."""
    found = []
    across = summary["duplicates_across_classes"]
    if across["groups"]:
        example = " = ".join(across["examples"][0])
        found.append(f"{_plural(across['groups'], 'picture is', 'pictures are')} under two classes (e.g. {example})")
    leaks = summary["leakage"]
    if leaks["test_in_train"] or leaks["test_in_val"]:
        found.append(
            f"leakage: {_plural(leaks['test_in_train'], 'test image is', 'test images are')} the same picture as a "
            f"training image, {leaks['test_in_val']} as a validation image; the test accuracy counts them as new"
        )
    if leaks["val_in_train"]:
        in_training = _plural(leaks["val_in_train"], "validation image is", "validation images are")
        found.append(f"{in_training} the same picture as a training image")
    within = summary["duplicates_within_class"]
    if within["groups"]:
        copies = _plural(within["extra_copies"], "extra copy", "extra copies")
        example = " = ".join(within["examples"][0])
        found.append(f"{copies} of {_plural(within['groups'], 'picture')} within a class (e.g. {example})")
    balance = summary["imbalance"]
    classes = summary["classes"]
    if balance["unbalanced"]:
        found.append(
            f"unbalanced classes: {balance['largest']!r} has {classes[balance['largest']]['images']} images, "
            f"{balance['ratio']:g} times the {classes[balance['smallest']]['images']} of {balance['smallest']!r}; "
            f"consider {BALANCED}"
        )
    if not found:
        found.append("no duplicates, no leakage between the parts of the split, no unbalanced classes")
    if summary["unreadable_left_out"]:
        unreadable = _plural(len(summary["unreadable_left_out"]), "unreadable file")
        found.append(f"{unreadable} left out (data.skip_unreadable)")
    if summary["outside_classes"]:
        found.append(
            f"{_plural(len(summary['outside_classes']), 'file')} outside any class folder left out "
            f"({', '.join(summary['outside_classes'][:EXAMPLES])})"
        )
    if summary["no_ink"]["count"]:
        blank = _plural(summary["no_ink"]["count"], "picture")
        found.append(
            f"{blank} with no ink found (blank to the recipe; check data.ink), "
            f"e.g. {', '.join(summary['no_ink']['examples'][:3])}"
        )
    described = "; ".join(
        _described(key, counts, summary["seen_distinct"][key], summary["size_range"])
        for key, counts in summary["seen"].items()
    )
    found.append(f"{summary['images']} images in {len(classes)} classes; {described}")
    return found

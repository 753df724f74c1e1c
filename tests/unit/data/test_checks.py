"""digitflow.data.checks: duplicates, pictures under two classes, leakage, imbalance, each found and said
once, on small hand-made datasets whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from digitflow.core.errors import DataError
from digitflow.data.checks import duplicate_groups, leakage, refuse_cross_class_duplicates, row_digests, summarise

NAMES = ("cat", "dog")


def test_duplicate_groups_are_the_images_sharing_a_hash() -> None:
    assert duplicate_groups(["a", "b", "a", "c", "b", "a"]) == [[0, 2, 5], [1, 4]]
    assert duplicate_groups(["a", "b", "c"]) == []


def test_row_digests_are_of_the_pixel_values() -> None:
    rows = np.array([[0, 16, 3], [0, 16, 3], [0, 16, 4]], dtype=np.float32)
    digests = row_digests(rows)
    assert digests[0] == digests[1] != digests[2]
    assert len(digests[0]) == 64


def test_a_picture_under_two_classes_is_refused_naming_the_files() -> None:
    digests = ["x", "y", "x", "z"]
    labels = np.array([0, 0, 1, 1])
    names = ["cat/1.png", "cat/2.png", "dog/7.jpg", "dog/8.png"]
    with pytest.raises(DataError) as caught:
        refuse_cross_class_duplicates(digests, labels, names, NAMES)
    assert "1 picture(s) are filed under two or more classes" in str(caught.value)
    assert "\n  cat/1.png = dog/7.jpg\n" in str(caught.value)
    refuse_cross_class_duplicates(["x", "y", "x"], np.array([0, 0, 0]), names[:3], NAMES)  # same class: not refused


def test_leakage_counts_later_parts_seen_in_earlier_ones() -> None:
    digests = ["a", "b", "c", "a", "b", "d", "c"]
    parts = {"train": np.array([0, 1]), "val": np.array([2]), "test": np.array([3, 4, 5, 6])}
    found = leakage(digests, parts)
    assert (found["test_in_train"], found["test_in_val"], found["val_in_train"]) == (2, 1, 0)
    assert found["test_in_train_examples"] == [3, 4]


def summary_of(labels: list[int], digests: list[str], parts: dict) -> dict:
    names = [f"{NAMES[label]}/{index}.png" for index, label in enumerate(labels)]
    seen = {"sizes (width x height)": ["20x14"] * len(labels), "modes": ["L"] * len(labels)}
    return summarise("folder", NAMES, np.array(labels), digests, names, parts, seen, "test hash")


def test_a_clean_dataset_says_so_and_what_it_holds() -> None:
    summary = summary_of(
        [0, 0, 1, 1], list("abcd"), {"train": np.array([0, 2]), "val": np.array([1]), "test": np.array([3])}
    )
    assert summary["findings"] == [
        "no duplicates, no leakage between the parts of the split, no unbalanced classes",
        "4 images in 2 classes; sizes (width x height) 20x14 (4); modes L (4)",
    ]
    assert summary["classes"] == {
        "cat": {"images": 2, "train": 1, "val": 1, "test": 0},
        "dog": {"images": 2, "train": 1, "val": 0, "test": 1},
    }


def test_duplicates_leakage_and_imbalance_each_have_their_sentence() -> None:
    labels = [0] * 7 + [1] * 3  # 7 cats, 3 dogs: more than twice as many
    digests = ["a", "a", "b", "c", "b", "d", "e", "f", "g", "h"]
    parts = {"train": np.array([0, 2, 3, 7]), "val": np.array([5, 8]), "test": np.array([1, 4, 6, 9])}
    summary = summary_of(labels, digests, parts)
    assert summary["duplicates_within_class"] == {
        "groups": 2,
        "extra_copies": 2,
        "examples": [["cat/0.png", "cat/1.png"], ["cat/2.png", "cat/4.png"]],
    }
    assert summary["leakage"]["test_in_train"] == 2
    assert summary["imbalance"] == {"largest": "cat", "smallest": "dog", "ratio": 2.333, "unbalanced": True}
    assert summary["findings"][:3] == [
        "leakage: 2 test images are the same picture as a training image, 0 as a validation image; the test "
        "accuracy counts them as new",
        "2 extra copies of 2 pictures within a class (e.g. cat/0.png = cat/1.png)",
        "unbalanced classes: 'cat' has 7 images, 2.333 times the 3 of 'dog'; consider train_sklearn.class_weight: "
        "balanced and train_torch.class_weight: balanced",
    ]


def test_twice_as_many_is_not_yet_unbalanced() -> None:
    summary = summary_of(
        [0, 0, 0, 0, 1, 1], list("abcdef"), {"train": np.arange(6), "val": np.array([], int), "test": np.array([], int)}
    )
    assert summary["imbalance"]["ratio"] == 2.0
    assert not summary["imbalance"]["unbalanced"]


def test_pictures_under_two_classes_are_reported_where_they_are_not_refused() -> None:
    """Digits and MNIST: reporting only."""
    summary = summary_of(
        [0, 1, 1], ["a", "a", "b"], {"train": np.array([0, 1, 2]), "val": np.array([], int), "test": np.array([], int)}
    )
    assert summary["duplicates_across_classes"] == {"groups": 1, "examples": [["cat/0.png", "dog/1.png"]]}
    assert summary["duplicates_within_class"]["groups"] == 0
    assert summary["findings"][0] == "1 picture is under two classes (e.g. cat/0.png = dog/1.png)"


def test_many_sizes_are_summed_up_with_their_range() -> None:
    sizes = [f"{30 + i}x{40 + 2 * i}" for i in range(12)] + ["30x40"]
    summary = summarise(
        "folder", NAMES, np.array([0] * 7 + [1] * 6), list("abcdefghijklm"), [str(i) for i in range(13)],
        {"train": np.arange(13), "val": np.array([], int), "test": np.array([], int)},
        {"sizes (width x height)": sizes}, "h",
    )  # fmt: skip
    assert summary["findings"][-1] == (
        "13 images in 2 classes; sizes (width x height): 12 different from 30x40 to 41x62, the most common "
        "30x40 (2), 31x42 (1), 32x44 (1), 33x46 (1), 34x48 (1)"
    )


def test_what_was_left_out_is_listed() -> None:
    summary = summarise(
        "folder", NAMES, np.array([0, 1]), ["a", "b"], ["cat/0.png", "dog/0.png"],
        {"train": np.array([0, 1]), "val": np.array([], int), "test": np.array([], int)}, {}, "h",
        {
            "unreadable": [("cat/x.txt", "not a PNG or JPEG file")],
            "outside_classes": ["README.md"],
            "no_ink": ["dog/0.png"],
        },
    )  # fmt: skip
    assert summary["unreadable_left_out"] == [{"path": "cat/x.txt", "reason": "not a PNG or JPEG file"}]
    assert summary["findings"][:4] == [
        "no duplicates, no leakage between the parts of the split, no unbalanced classes",
        "1 unreadable file left out (data.skip_unreadable)",
        "1 file outside any class folder left out (README.md)",
        "1 picture with no ink found (blank to the recipe; check data.ink), e.g. dog/0.png",
    ]

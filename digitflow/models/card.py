"""A model's card: what turns an image file into the model's input (dataset, image shape, the value of
full ink, the recipe and its options) and what comes out (the class names, in the order of the
probability columns). Saved beside the model (``models/<model>/model_card.json``) and logged with it to
MLflow as the model's metadata, so a model from either place can be used on a picture."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from digitflow.core.errors import DigitflowError
from digitflow.data.datasets import DIGIT_CLASSES, IMAGE_RECIPES, DatasetMeta
from digitflow.models.image_recipes import RECIPES


@dataclass(frozen=True)
class ModelCard:
    """What a model expects: the image shape, the value of full ink (``pixel_max``) and the recipe that
    makes its images (a card written before the recipe was recorded gets its dataset's), and what its
    probability columns are (a card written before class names were recorded: the ten digits)."""

    dataset: str
    image_shape: tuple[int, int]
    pixel_max: int
    image_recipe: str
    class_names: tuple[str, ...] = DIGIT_CLASSES
    recipe_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        recipe = data.get("image_recipe") or IMAGE_RECIPES.get(data["dataset"], "")
        if recipe not in RECIPES:
            raise DigitflowError(
                f"the model's card asks for the image recipe {recipe!r} (dataset {data['dataset']!r}), which this "
                f"version of digitflow does not know (it knows {', '.join(RECIPES)}): update digitflow"
            )
        return cls(
            data["dataset"],
            tuple(data["image_shape"]),
            int(data["pixel_max"]),
            recipe,
            tuple(data.get("class_names") or DIGIT_CLASSES),
            dict(data.get("recipe_options") or {}),
        )

    @property
    def n_features(self) -> int:
        return self.image_shape[0] * self.image_shape[1]


def model_card(meta: DatasetMeta) -> dict[str, Any]:
    """The card of a model trained on the images ``meta`` describes."""
    n_features = meta.image_shape[0] * meta.image_shape[1]
    height, width = meta.image_shape
    return {
        "dataset": meta.dataset,
        "image_shape": list(meta.image_shape),
        "pixel_max": meta.pixel_max,
        # How a picture is made into such an image (models/image_recipes.py): `digitflow predict` follows it.
        "image_recipe": meta.image_recipe,
        "recipe_options": dict(meta.recipe_options),
        # Probability column i is class_names[i].
        "class_names": list(meta.class_names),
        "input": f"float32 (n, {n_features}) raw pixels 0..{meta.pixel_max}, ink high ({height}x{width} images, "
        "row by row)",
        "output": f"(n, {meta.n_classes}) probabilities of the classes, in the order of class_names",
    }

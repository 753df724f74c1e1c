"""A model's card: what turns an image file into the model's input (dataset, image shape, the value of
full ink) and what comes out. Saved beside the model (``models/<model>/model_card.json``) and logged
with it to MLflow as the model's metadata, so a model from either place can be used on a picture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from digitflow.core.errors import DigitflowError
from digitflow.data.datasets import IMAGE_RECIPES, N_CLASSES, DatasetMeta
from digitflow.models.image_recipes import RECIPES


@dataclass(frozen=True)
class ModelCard:
    """What a model expects: the image shape, the value of full ink (``pixel_max``) and the recipe that
    makes its images (a card written before the recipe was recorded gets its dataset's)."""

    dataset: str
    image_shape: tuple[int, int]
    pixel_max: int
    image_recipe: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        recipe = data.get("image_recipe") or IMAGE_RECIPES.get(data["dataset"], "")
        if recipe not in RECIPES:
            raise DigitflowError(
                f"the model's card asks for the image recipe {recipe!r} (dataset {data['dataset']!r}), which this "
                f"version of digitflow does not know (it knows {', '.join(RECIPES)}): update digitflow"
            )
        return cls(data["dataset"], tuple(data["image_shape"]), int(data["pixel_max"]), recipe)

    @property
    def n_features(self) -> int:
        return self.image_shape[0] * self.image_shape[1]


def model_card(meta: DatasetMeta) -> dict[str, Any]:
    """The card of a model trained on the images ``meta`` describes."""
    n_features = meta.image_shape[0] * meta.image_shape[1]
    return {
        "dataset": meta.dataset,
        "image_shape": list(meta.image_shape),
        "pixel_max": meta.pixel_max,
        # How a picture is made into such an image (models/image_recipes.py): `digitflow predict` follows it.
        "image_recipe": meta.image_recipe,
        "input": f"float32 (n, {n_features}) raw pixels 0..{meta.pixel_max}, ink high",
        "output": f"float64 (n, {N_CLASSES}) probabilities of the digits 0..{N_CLASSES - 1}",
    }

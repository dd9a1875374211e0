"""A named, versioned list of features: what a model was trained on and what serving must produce."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureSet:
    name: str
    version: str
    features: tuple[str, ...]
    categorical: tuple[str, ...] = ()

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "features": list(self.features)}

"""The model registry: a directory of immutable, versioned model artifacts with their model cards.

    <root>/<service>/<version>/model.cbm      the model (CatBoost's own format: no pickle)
    <root>/<service>/<version>/card.json      the model card: what it is, what it was trained on, how good
    <root>/<service>/champion                 the version in service (one line; replaced atomically)

A version is never rewritten: training always adds one. Promotion only moves the champion alias.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from catboost import CatBoost

from shared.errors import ModelNotFound

MODEL_FILE = "model.cbm"
CARD_FILE = "card.json"
CHAMPION_FILE = "champion"


@dataclass(frozen=True)
class RegisteredModel:
    service: str
    version: str
    path: Path
    card: dict[str, Any]
    model: CatBoost


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def register(self, service: str, model: CatBoost, card: dict[str, Any], *, make_champion: bool = True) -> str:
        """Store a new version and return it. The card gets `version`, `service` and `created_at`."""
        created = datetime.now(UTC)
        fingerprint = str(card.get("data_fingerprint", ""))[:8] or "nodata"
        version = f"{created:%Y%m%dT%H%M%S%f}-{fingerprint}"
        service_dir = self.root / service
        service_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=service_dir))
        model.save_model(str(staging / MODEL_FILE), format="cbm")
        full_card = {"service": service, "version": version, "created_at": created.isoformat(), **card}
        (staging / CARD_FILE).write_text(json.dumps(full_card, indent=2, sort_keys=True) + "\n")
        os.replace(staging, service_dir / version)
        if make_champion:
            self.set_champion(service, version)
        return version

    def versions(self, service: str) -> list[str]:
        service_dir = self.root / service
        if not service_dir.is_dir():
            return []
        return sorted(p.name for p in service_dir.iterdir() if (p / CARD_FILE).is_file())

    def champion(self, service: str) -> str:
        pointer = self.root / service / CHAMPION_FILE
        try:
            version = pointer.read_text().strip()
        except FileNotFoundError:
            raise ModelNotFound(
                f"no {service} model in {self.root}: run `risk train {service}` first"
            ) from None
        if version not in self.versions(service):
            raise ModelNotFound(f"the {service} champion {version!r} is not in {self.root}")
        return version

    def set_champion(self, service: str, version: str) -> None:
        if version not in self.versions(service):
            raise ModelNotFound(f"no {service} model version {version!r} in {self.root}")
        _write_atomically(self.root / service / CHAMPION_FILE, version + "\n")

    def card(self, service: str, version: str | None = None) -> dict[str, Any]:
        version = version or self.champion(service)
        return json.loads((self.root / service / version / CARD_FILE).read_text())

    def load(self, service: str, version: str | None = None) -> RegisteredModel:
        version = version or self.champion(service)
        path = self.root / service / version
        card = self.card(service, version)
        model = CatBoost()
        model.load_model(str(path / MODEL_FILE), format="cbm")
        return RegisteredModel(service=service, version=version, path=path, card=card, model=model)


def library_versions() -> dict[str, str]:
    """What a model card records of the software that trained the model."""
    import platform
    from importlib.metadata import version

    return {"python": platform.python_version(),
            **{lib: version(lib) for lib in ("catboost", "scikit-learn", "pandas", "numpy")}}


def fingerprint_frame(frame: Any) -> str:
    """A stable content hash of a DataFrame: the training data's identity in the model card."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)

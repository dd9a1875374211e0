"""The model registry: a directory of immutable, versioned model artifacts with their model cards.

    <root>/<service>/<version>/model.cbm      a CatBoost model (CatBoost's own format: no pickle), or
    <root>/<service>/<version>/model/         an artifact that saves itself (`SelfSavingArtifact`), such as
                                              a bundle of calibrated models written as JSON and .cbm files
    <root>/<service>/<version>/card.json      the model card: what it is, what it was trained on, how good
    <root>/<service>/champion                 the version in service (one line; replaced atomically)

A version is never rewritten: training always adds one, a candidate. Only an approved proposal moves the
champion alias (shared/control/store.py), except for a service's first model, which becomes the champion
because there is none.
Nothing is pickled: loading a model never runs code from the registry directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeAlias

from catboost import CatBoost

from shared.errors import ModelNotFoundError

MODEL_FILE = "model.cbm"
MODEL_DIR = "model"
CARD_FILE = "card.json"
CHAMPION_FILE = "champion"


@dataclass(frozen=True)
class RegisteredModel:
    service: str
    version: str
    path: Path
    card: dict[str, Any]
    model: Any  # a CatBoost model, or what the service's loader made of its artifact directory


class SelfSavingArtifact(Protocol):
    def save(self, directory: Path) -> None: ...


Artifact: TypeAlias = CatBoost | SelfSavingArtifact
ModelLoader = Callable[[Path], Any]


def load_catboost(version_dir: Path) -> CatBoost:
    model = CatBoost()
    model.load_model(str(version_dir / MODEL_FILE), format="cbm")
    return model


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def register(
        self,
        service: str,
        model: Artifact,
        card: dict[str, Any],
        *,
        attachments: Mapping[str, bytes] | None = None,
    ) -> str:
        """Store a new version and return it. The card gets `version`, `service` and `created_at`;
        `attachments` (file name -> content, e.g. a reliability chart) are stored beside it. The version
        becomes the champion only when the service has none."""
        created = datetime.now(UTC)
        fingerprint = str(card.get("data_fingerprint", ""))[:8] or "nodata"
        version = f"{created:%Y%m%dT%H%M%S%f}-{fingerprint}"
        service_dir = self.root / service
        service_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=service_dir))
        if isinstance(model, CatBoost):
            model.save_model(str(staging / MODEL_FILE), format="cbm")
        else:
            (staging / MODEL_DIR).mkdir()
            model.save(staging / MODEL_DIR)
        for name, content in (attachments or {}).items():
            if Path(name).name != name or name in {MODEL_FILE, MODEL_DIR, CARD_FILE}:
                raise ValueError(f"attachment {name!r} must be a plain file name other than the model's and card's")
            (staging / name).write_bytes(content)
        full_card = {"service": service, "version": version, "created_at": created.isoformat(), **card}
        (staging / CARD_FILE).write_text(json.dumps(full_card, indent=2, sort_keys=True) + "\n")
        os.replace(staging, service_dir / version)
        self._champion_if_none(service, version)
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
            raise ModelNotFoundError(f"no {service} model in {self.root}: run `risk train {service}` first") from None
        if version not in self.versions(service):
            raise ModelNotFoundError(f"the {service} champion {version!r} is not in {self.root}")
        return version

    def _champion_if_none(self, service: str, version: str) -> None:
        """Point the alias at `version` only if no alias exists (a hard link made or refused atomically, so two
        trainings racing on an empty registry make one champion, never two in turn)."""
        pointer = self.root / service / CHAMPION_FILE
        if pointer.exists():
            return
        handle, temporary = tempfile.mkstemp(dir=pointer.parent, prefix=f".{CHAMPION_FILE}.")
        with os.fdopen(handle, "w") as stream:
            stream.write(version + "\n")
        try:
            os.link(temporary, pointer)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)

    def set_champion(self, service: str, version: str) -> None:
        if version not in self.versions(service):
            raise ModelNotFoundError(f"no {service} model version {version!r} in {self.root}")
        write_atomically(self.root / service / CHAMPION_FILE, version + "\n")

    def card(self, service: str, version: str | None = None) -> dict[str, Any]:
        version = version or self.champion(service)
        return json.loads((self.root / service / version / CARD_FILE).read_text())

    def load(self, service: str, version: str | None = None, loader: ModelLoader = load_catboost) -> RegisteredModel:
        """The version (the champion by default), its artifact read by `loader` from the version directory."""
        version = version or self.champion(service)
        path = self.root / service / version
        card = self.card(service, version)
        return RegisteredModel(service=service, version=version, path=path, card=card, model=loader(path))


def library_versions() -> dict[str, str]:
    """What a model card records of the software that trained the model."""
    import platform
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        **{lib: version(lib) for lib in ("catboost", "scikit-learn", "pandas", "numpy")},
    }


def fingerprint_frame(frame: Any) -> str:
    """A stable content hash of a DataFrame: the training data's identity in the model card."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)

"""The emulator's model catalogue: ``GET /api/v1/models`` in the reference's shape (§11).

``{success, message, data: [{model_id, desc, types, features, input_modalities, pricing}]}``,
one entry per model the registry serves, its ``model_id`` the bare id (as the real catalogue
lists them). Prices are the shipped snapshot's, replaced by ``sandbox.prices`` (``{model:
per-image price or pricing object}``) so a test can tell the live catalogue from the snapshot.
The filters ``type`` and ``model`` are honoured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._pricing import snapshot_body
from .._registry import Registry

__all__ = ["catalogue_body"]


def _snapshot_pricing() -> dict[str, Any]:
    return {
        entry["model_id"].lower(): entry["pricing"]
        for entry in snapshot_body()["data"]
        if isinstance(entry, dict) and "pricing" in entry
    }


def catalogue_body(
    registry: Registry, prices: Mapping[str, Any], query: Mapping[str, str]
) -> dict[str, Any]:
    snapshot = _snapshot_pricing()
    chosen = {k.rsplit("/", 1)[-1].lower(): v for k, v in prices.items()}
    wanted_type = query.get("type")
    wanted_model = query.get("model")
    data = []
    for info in registry.models():
        model_id = info.path.rsplit("/", 1)[-1]
        if wanted_model and wanted_model.lower() != model_id.lower():
            continue
        if wanted_type and wanted_type != "image_generation":
            continue
        pricing = chosen.get(model_id.lower(), snapshot.get(model_id.lower()))
        if isinstance(pricing, int | float):
            pricing = {"per_image": pricing}
        data.append({
            "model_id": model_id,
            "desc": f"{info.family} image model",
            "types": "image_generation",
            "features": "",
            "input_modalities": "text,image" if info.params else "text",
            "pricing": pricing or {"input": 0, "output": 0},
        })  # fmt: skip
    return {"success": True, "message": "", "data": data}

"""Dotted keys over nested mappings: ``"model.ngf"`` ↔ ``{"model": {"ngf": ...}}``.

Shared by params validation, the stages (which read ``params.yaml``) and the trainer (config comparisons).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pix2pix.errors import ConfigError


def lookup(params: Mapping[str, Any], dotted_key: str) -> Any:
    """Return ``params["a"]["b"]`` for ``"a.b"``; :class:`ConfigError` naming the key if it is missing."""
    node: Any = params
    for part in dotted_key.split("."):
        if not isinstance(node, Mapping):
            raise ConfigError(f"params.yaml: missing key `{dotted_key}`")
        try:
            node = node[part]  # item access, so a stage's DeclaredParams can name an undeclared key
        except KeyError:
            raise ConfigError(f"params.yaml: missing key `{dotted_key}`") from None
    return node


def flatten_keys(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"ngf": 8}}`` → ``{"model.ngf": 8}`` (MLflow params, config comparisons)."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, Mapping):
            flat.update(flatten_keys(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat

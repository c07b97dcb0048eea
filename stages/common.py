"""What every stage shares: reading params.yaml and turning expected errors into one line.

Each stage module declares ``USES``, the dotted params keys it reads. It receives a params dict cut down
to exactly those keys, so reading an undeclared key fails loudly; ``tests/pipeline/test_dvc_yaml.py`` checks that
``USES`` equals the stage's ``params:`` list in ``dvc.yaml``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from pix2pix.keys import lookup
from pix2pix.params import validate_params
from pix2pix.console import error_line
from pix2pix.errors import ConfigError, Pix2PixError

PARAMS_FILE = Path("params.yaml")


def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """Read and validate the whole params file."""
    try:
        params = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as error:
        raise ConfigError(f"{path}: missing; run the stage from the repository root") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values")
    validate_params(params)
    return params


class DeclaredParams(dict):
    """A params dict cut down to a stage's declared keys; reading any other key is a bug named in one line."""

    def __init__(self, prefix: str = "") -> None:
        super().__init__()
        self.prefix = prefix

    def get(self, key: str, default: Any = None) -> Any:
        """An undeclared key fails as with ``[]`` (``default`` is never used: a silent None would hide the bug)."""
        return self[key]

    def __missing__(self, key: str) -> Any:
        raise ConfigError(
            f"this stage read `{self.prefix}{key}` without declaring it: add it to the stage's USES and to its "
            "`params:` in dvc.yaml (else DVC would not re-run the stage when it changes)"
        )


def restrict(params: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Return a nested :class:`DeclaredParams` holding only the dotted ``keys`` of ``params``."""
    result = DeclaredParams()
    for key in keys:
        *parents, leaf = key.split(".")
        node = result
        for depth, part in enumerate(parents):
            node = node.setdefault(part, DeclaredParams(".".join(parents[: depth + 1]) + "."))
        node[leaf] = lookup(params, key)
    return result


def run_stage(uses: tuple[str, ...], main: Callable[[dict[str, Any]], None]) -> None:
    """Load params, give ``main`` its declared keys, and exit 1 with one red line on an expected error."""
    try:
        main(restrict(load_params(), uses))
    except Pix2PixError as error:
        print(error_line(error), file=sys.stderr)
        raise SystemExit(1) from None

"""Shared test fixtures."""

from __future__ import annotations

import os

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# Tests make throwaway git repos (DVC experiments need commits); give them an identity without touching config.
for _key, _value in {
    "GIT_AUTHOR_NAME": "pix2pix tests",
    "GIT_AUTHOR_EMAIL": "tests@pix2pix.local",
    "GIT_COMMITTER_NAME": "pix2pix tests",
    "GIT_COMMITTER_EMAIL": "tests@pix2pix.local",
}.items():
    os.environ.setdefault(_key, _value)

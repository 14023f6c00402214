"""Render the app's OpenAPI document as YAML (the committed ``openapi.yaml``)."""

from __future__ import annotations

import yaml

from dbsize.config import Settings
from dbsize.main import create_app


def render_openapi() -> str:
    # Defaults only: ``model_construct`` reads neither DBSIZE_* variables nor a .env file, so the
    # document does not depend on the environment it is rendered in. (``dbsize openapi`` also
    # clears DBSIZE_* before importing the app, for modules that read settings at import time.)
    app = create_app(Settings.model_construct())
    return yaml.safe_dump(app.openapi(), sort_keys=False, allow_unicode=True)

"""Render the app's OpenAPI document as YAML (the committed ``openapi.yaml``)."""

from __future__ import annotations

import yaml

from dbsize.config import Settings
from dbsize.main import create_app


def render_openapi() -> str:
    # Fixed settings: the document must not depend on the environment it is rendered in.
    app = create_app(Settings(_env_file=None))
    return yaml.safe_dump(app.openapi(), sort_keys=False, allow_unicode=True)

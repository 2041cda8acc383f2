"""Open the project's Feast repository for the configured lakehouse.

``feature_repo/feature_store.yaml`` names its paths with ``${PRESAGE_HOME}``; setting that variable
to the lakehouse root of the settings before loading makes the presage commands and the plain
``feast`` CLI see the same registry, online store and gold tables.
"""

from __future__ import annotations

import os
from pathlib import Path

from feast import FeatureStore

from presage.config import HOME_ENV, Settings


def open_store(settings: Settings) -> FeatureStore:
    """The FeatureStore of ``settings.feast`` (repository and yaml), for this lakehouse.

    Raises:
        FileNotFoundError: the repository or its yaml is missing.
    """
    repo = Path(settings.feast.repo).expanduser().resolve()
    yaml = repo / settings.feast.yaml
    if not yaml.is_file():
        raise FileNotFoundError(f"no Feast store configuration {yaml} (settings feast.repo / feast.yaml)")
    os.environ[HOME_ENV] = settings.root
    return FeatureStore(repo_path=str(repo), fs_yaml_file=yaml)

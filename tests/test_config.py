from pathlib import Path

import pytest

from presage.config import ConfigError, Settings, load_settings


def test_no_file_gives_documented_defaults() -> None:
    settings = load_settings(None)
    assert settings.spark.profile == "local"
    assert settings.privacy.key_env == "PRESAGE_HMAC_KEY"
    assert set(settings.channels) == {"email", "sms", "push", "display", "social_ads"}


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "conf.yaml"
    path.write_text("spark:\n  profil: local\n")
    with pytest.raises(ConfigError, match=r"spark\.profil"):
        load_settings(path)


def test_wrong_type_is_named(tmp_path: Path) -> None:
    path = tmp_path / "conf.yaml"
    path.write_text("channels:\n  email:\n    cost_per_contact: cheap\n")
    with pytest.raises(ConfigError, match=r"channels\.email\.cost_per_contact"):
        load_settings(path)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("spark: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)


def test_presage_home_moves_the_lakehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRESAGE_HOME", str(tmp_path / "elsewhere"))
    assert Settings(home="/ignored").root == str(tmp_path / "elsewhere")
    monkeypatch.delenv("PRESAGE_HOME")
    assert Settings(home=str(tmp_path / "cfg")).root == str(tmp_path / "cfg")
    assert Settings().root == str(Path("lakehouse").resolve())


def test_cli_reports_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from presage.cli import main

    path = tmp_path / "conf.yaml"
    path.write_text("horizon_dayz: 30\n")
    assert main(["--config", str(path), "where"]) == 2
    assert "horizon_dayz" in capsys.readouterr().err


def test_large_profile_is_the_local_profile_resized() -> None:
    """`spark-submit --properties-file` replaces spark-defaults, so each profile must be complete:
    the large profile keeps every setting of the local one and changes only sizes."""
    from presage.session import read_profile

    local, large = read_profile("local"), read_profile("large")
    sizes = {"spark.driver.memory", "spark.driver.maxResultSize", "spark.sql.shuffle.partitions",
             "spark.sql.adaptive.advisoryPartitionSizeInBytes"}
    assert set(local) <= set(large), f"large.conf lacks {sorted(set(local) - set(large))}"
    differing = {key for key in local if local[key] != large[key]}
    assert differing <= sizes, f"large.conf changes more than sizes: {sorted(differing - sizes)}"
    assert set(large) - set(local) <= sizes
    assert int(large["spark.sql.shuffle.partitions"]) > int(local["spark.sql.shuffle.partitions"])

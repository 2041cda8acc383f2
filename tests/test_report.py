"""`presage report` on the scored model lakehouse, checked in a real headless Chromium (Debian's
chromium and chromium-driver): every chart is drawn (a visible SVG with shapes, its title, axis labels
and caption), the browser logs no error and fetches nothing; drift comes from the newest monitor date
at or before the score date, or the page asks for `presage monitor`; the curves the page draws agree
with the metrics training logged."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from deltalake import write_deltalake

from presage.models import metrics
from presage.reporting.charts import decile_lift
from tests.conftest import use_home

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
INSTALL = "apt-get install -y chromium chromium-driver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1000")
GOALS = ("purchase_propensity", "churn_risk", "expected_spend", "channel_response")
AXES = {  # chart key prefix -> words its axes must show
    "gain": ["share of people contacted", "reached"], "lift": ["score decile", "lift over the average"],
    "calibration": ["mean", "decile"], "leads": ["tier", "persons"], "budget": ["budget (order currency)"],
    "segments": ["consented persons", "segment"], "drift": ["PSI"],
}
FIGURES = """
return Array.from(document.querySelectorAll('figure.chart')).map(f => {
  const svg = f.querySelector('svg'), box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const marks = svg ? Array.from(svg.querySelectorAll('[clip-path]')).filter(s => {
    const b = s.getBBox(); return b.width > 0 || b.height > 0; }).length : 0;
  return {key: f.id, title: f.querySelector('.chart-title').textContent, caption: f.querySelector('figcaption').textContent,
          width: box.width, height: box.height, marks: marks, text: svg ? svg.textContent : '',
          fills: svg ? svg.innerHTML : ''};
});
"""


def test_holdout_curves_give_decile_lift_and_calibration():
    rng = np.random.default_rng(3)
    scores = rng.random(1000)
    outcome = (rng.random(1000) < scores).astype(float)
    curves = metrics.holdout_curves(scores, outcome, rng.random(1000))
    assert curves["gain_model"][0] == 0 and curves["gain_model"][-1] == pytest.approx(1.0)
    assert np.all(np.asarray(curves["gain_perfect"]) >= np.asarray(curves["gain_model"]) - 1e-12)
    by_decile = outcome[np.argsort(-scores, kind="stable")].reshape(10, 100).mean(axis=1) / outcome.mean()
    np.testing.assert_allclose(decile_lift(curves), by_decile)
    assert decile_lift(curves)[0] == pytest.approx(metrics.binary(outcome, scores)["top_decile_lift"])
    _, observed, rows = metrics.calibration(outcome, scores)
    np.testing.assert_allclose(curves["calibration_observed"], observed)
    assert curves["calibration_rows"] == rows.tolist()


@pytest.fixture
def browser(tmp_path_factory: pytest.TempPathFactory):
    """A fresh headless Chromium per test: a tab lost to memory pressure does not fail the next test."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: the report test needs Debian's browser (`{INSTALL}`)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def report(spark, scored_lake, model_lake: str, lake_home: str, model_settings):
    """`presage report` run once (default path): the lakehouse and the report's result."""
    from presage.lakehouse import Lakehouse
    from presage.reporting.job import run

    with use_home(model_lake, lake_home):
        yield Lakehouse.of(model_settings), run(spark, model_settings)


def _open(browser, path: str) -> list[dict]:
    """The page's figures as the browser laid them out; fails on any browser error or fetch."""
    browser.get(Path(path).as_uri())
    assert browser.title.startswith("presage report")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    return browser.execute_script(FIGURES)


def _assert_drawn(figure: dict) -> None:
    key = figure["key"]
    assert figure["width"] > 100 and figure["height"] > 100, figure
    assert figure["marks"] >= (10 if key.startswith("lift") else 2), figure["marks"]  # data clipped to the axes: lines, bars
    assert figure["title"].strip() and len(figure["caption"].strip()) > 20, key
    for words in AXES[key.split("-")[0]]:
        assert words in figure["text"], (key, words)


@pytest.mark.slow
def test_every_chart_of_the_scored_lakehouse_renders_in_chromium(report, scored_lake, browser):
    lake, result = report
    data = result.data
    assert data.score_date == scored_lake.score_date
    path = lake.report(data.score_date.isoformat())
    assert result.path == path and Path(path).is_file()
    figures = _open(browser, path)
    keys = [f["key"] for f in figures]
    expected = [f"{kind}-{goal}" for goal in GOALS for kind in ("gain", "lift", "calibration")]
    expected += ["leads", "budget-channel", "budget-segment", "segments-micro", "segments-rfm"]
    assert keys[:len(expected)] == expected and keys == result.charts
    assert len(keys) == len(set(keys))
    for figure in figures:
        _assert_drawn(figure)
    titles = {f["key"]: f["title"] for f in figures}
    assert titles["gain-purchase_propensity"] == "purchase_propensity: cumulative gain"
    assert titles["budget-segment"] == "Budget by segment"
    heading = browser.find_element("css selector", "h1").text
    assert data.score_date.isoformat() in heading


@pytest.mark.slow
def test_drawn_curves_agree_with_the_metrics_training_logged(report):
    data = report[1].data
    assert all("drift" in note for note in report[1].notes)  # every model drawn
    assert [e.goal for e in data.models] == list(GOALS)
    for e in data.models:
        assert e.curves is not None, e.note
        rows = e.curves["rows"]
        top = max(1, round(0.1 * rows)) / rows
        gain_at_top = e.curves["gain_model"][10]
        if e.objective == "binary":
            assert gain_at_top == pytest.approx(e.metrics["top_decile_lift"] * top), e.goal
        else:
            assert gain_at_top == pytest.approx(e.metrics["top_decile_revenue_capture"]), e.goal
        assert e.metrics["rows"] == rows


def _planted_drift(path: str, score_date: dt.date) -> list[tuple]:
    rows = []
    for monitor_date, shift in ((score_date - dt.timedelta(days=1), 1.0), (score_date + dt.timedelta(days=1), 9.0)):
        for model in ("purchase_propensity", "churn_risk"):
            rows.append((monitor_date, model, "score", model, 0.3 * shift if model == "churn_risk" else 0.01, "alert" if model == "churn_risk" else "ok"))
            for i in range(25):
                psi = shift * (0.01 * i + (0.02 if model == "churn_risk" else 0.0))
                rows.append((monitor_date, model, "feature", f"feature_{i:02d}", psi, "alert" if psi >= 0.25 else "warn" if psi >= 0.1 else "ok"))
    columns = ["monitor_date", "model", "kind", "name", "psi", "status"]
    write_deltalake(path, pd.DataFrame(rows, columns=columns), partition_by=["monitor_date"])
    return rows


@pytest.mark.slow
def test_drift_from_the_monitor_table_or_a_request_to_run_it(spark, report, browser, tmp_path):
    from presage.reporting import charts, page
    from presage.reporting.data import drift

    data = report[1].data
    planted = str(tmp_path / "drift")
    rows = _planted_drift(planted, data.score_date)
    measured = drift(spark, planted, data.score_date)
    assert measured.monitor_date == data.score_date - dt.timedelta(days=1)  # the later date is not seen
    assert list(measured.scores["model"]) == ["churn_risk", "purchase_propensity"]
    assert list(measured.features["name"][:3]) == ["feature_24", "feature_23", "feature_22"]
    assert len(measured.features) == 20
    assert measured.features["psi"].iloc[0] == pytest.approx(0.26)  # the larger of the two models
    assert measured.features_by_status == Counter(r[5] for r in rows if r[0] == measured.monitor_date and r[2] == "feature")
    assert drift(spark, planted, data.score_date - dt.timedelta(days=2)) is None
    assert drift(spark, str(tmp_path / "absent"), data.score_date) is None

    now = dt.datetime.now(dt.UTC)
    with_drift = dataclasses.replace(data, drift=measured)
    (tmp_path / "with.html").write_text(page.render(with_drift, charts.build(with_drift), now))
    figures = {f["key"]: f for f in _open(browser, str(tmp_path / "with.html"))}
    for key in ("drift-scores", "drift-features"):
        _assert_drawn(figures[key])
    assert charts.STATUS_COLOURS["alert"] in figures["drift-scores"]["fills"]
    assert "feature_24" in figures["drift-features"]["text"]
    assert not browser.find_elements("id", "drift-missing")

    without = dataclasses.replace(data, drift=None)
    (tmp_path / "without.html").write_text(page.render(without, charts.build(without), now))
    keys = [f["key"] for f in _open(browser, str(tmp_path / "without.html"))]
    assert not [k for k in keys if k.startswith("drift")]
    note = browser.find_element("id", "drift-missing")
    assert note.is_displayed() and "presage monitor" in note.text


@pytest.mark.slow
def test_a_date_without_scores_is_a_clear_error(report, model_lake: str, lake_home: str, tmp_path, capsys):
    from presage.cli import main

    data = report[1].data
    with use_home(model_lake, lake_home):
        assert main(["report", "--as-of", "2001-01-01", "--output", str(tmp_path / "never.html")]) == 2
    error = capsys.readouterr().err
    assert "no scores for 2001-01-01" in error and data.score_date.isoformat() in error
    assert not (tmp_path / "never.html").exists()

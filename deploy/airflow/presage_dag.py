"""Airflow DAGs that run presage on Kubernetes, one task per job.

Each Spark task submits a SparkApplication (spark-operator) through the cncf.kubernetes provider's
``SparkKubernetesOperator``, which waits for the driver and streams its log. Every job's application
is the one template ``deploy/kubernetes/spark-application.yaml`` with the job's name, file of
``jobs/`` and arguments (``JOBS`` below, built by ``application``). Written for Airflow 3
(``airflow.sdk``) with ``apache-airflow-providers-cncf-kubernetes``; put the whole ``deploy/``
folder in the DAGs folder (or mount it there), since the manifests are read relative to this file.
The Airflow connection ``kubernetes_default`` names the cluster.

- ``presage_daily`` (03:00 UTC): ingest, build_profiles, build_features, feast_apply, materialize,
  score, then monitor and report (the report is written even when monitor raised an alert) and
  retention.
- ``presage_weekly_training`` (Sunday 06:00 UTC): the four built-in models, each trained,
  evaluated and registered; a model becomes champion only when it beats the current one.
- ``presage_erase`` (manual): erases one person; trigger with the conf
  ``{"customer": "<customer id or email>"}``.

Every job is idempotent (a rerun after a crash leaves the tables of a clean run), so retries are
safe and belong here: the SparkApplications themselves never restart.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator
from airflow.sdk import DAG, Param, chain

KUBERNETES = Path(__file__).resolve().parents[1] / "kubernetes"
NAMESPACE = "presage"
GOALS = ("purchase_propensity", "churn_risk", "expected_spend", "channel_response")
# What differs between the Spark jobs (the rest is deploy/kubernetes/spark-application.yaml):
# job -> (its file of jobs/, its arguments after the template's --config).
JOBS: dict[str, tuple[str, list[str]]] = {
    "ingest": ("ingest", []),
    "build-profiles": ("build_profiles", []),
    "build-features": ("build_features", []),
    "materialize": ("materialize", []),
    "score": ("score", []),
    "monitor": ("monitor", ["--fail-on-alert"]),
    "report": ("report", []),
    "retention": ("retention", []),
    **{f"train-{goal.replace('_', '-')}": ("train", ["--model", goal]) for goal in GOALS},
    # The subject comes from the run's conf (Jinja: template_spec is a templated field).
    "erase": ("erase", ["--customer", "{{ params.customer }}"]),
}
# Settings every presage DAG shares: no catchup, and retries (every job is idempotent).
COMMON: dict[str, Any] = {
    "start_date": datetime(2026, 1, 1, tzinfo=UTC),
    "catchup": False,
    "default_args": {"retries": 2, "retry_delay": timedelta(minutes=10)},
}


def manifest(name: str) -> dict[str, Any]:
    """A manifest of deploy/kubernetes/ as a dict (read when the DAG file is parsed)."""
    return yaml.safe_load((KUBERNETES / name).read_text())


def application(job: str) -> dict[str, Any]:
    """The SparkApplication of one job of ``JOBS``: the shared template with the job's name and
    label (``presage-<job>``), its file of ``/opt/presage/jobs/`` and its arguments appended."""
    script, arguments = JOBS[job]
    app = manifest("spark-application.yaml")
    app["metadata"]["name"] = app["metadata"]["labels"]["app.kubernetes.io/name"] = f"presage-{job}"
    app["spec"]["mainApplicationFile"] = f"local:///opt/presage/jobs/{script}.py"
    app["spec"]["arguments"] = [*app["spec"]["arguments"], *arguments]
    return app


def spark_job(job: str, **kwargs: Any) -> SparkKubernetesOperator:
    """The task that runs ``job`` (a key of ``JOBS``); ``kwargs`` go to the operator."""
    return SparkKubernetesOperator(
        task_id=job.replace("-", "_"),
        namespace=NAMESPACE,
        template_spec=application(job),
        kubernetes_conn_id="kubernetes_default",
        **kwargs,
    )


with DAG(
    dag_id="presage_daily",
    description="raw drops to scored tables, monitoring and the report",
    schedule="0 3 * * *",
    max_active_runs=1,
    tags=["presage"],
    **COMMON,
):
    feast_apply = KubernetesPodOperator(
        task_id="feast_apply",
        namespace=NAMESPACE,
        name="presage-feast-apply",
        pod_template_dict=manifest("feast-apply.yaml"),
        kubernetes_conn_id="kubernetes_default",
        on_finish_action="delete_pod",
    )
    score = spark_job("score")
    chain(
        spark_job("ingest"),
        spark_job("build-profiles"),
        spark_job("build-features"),
        feast_apply,
        spark_job("materialize"),
        score,
        # An alert is a finding, not a transient failure: no retry.
        spark_job("monitor", retries=0),
        # The report shows the alerts too, so it runs whatever monitor's exit.
        spark_job("report", trigger_rule="all_done"),
    )
    score >> spark_job("retention")

with DAG(
    dag_id="presage_weekly_training",
    description="train and register the four models; a champion moves only on improvement",
    schedule="0 6 * * 0",
    max_active_runs=1,
    tags=["presage"],
    **COMMON,
):
    for job, (script, _) in JOBS.items():
        if script == "train":
            spark_job(job)

with DAG(
    dag_id="presage_erase",
    description="GDPR erasure of one person from every table, the online store and the raw drops",
    schedule=None,
    params={"customer": Param(type="string", minLength=1, description="customer id or email")},
    tags=["presage", "privacy"],
    **COMMON,
):
    spark_job("erase")

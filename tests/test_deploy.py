"""deploy/ held to the code it deploys: Kubernetes manifests that parse and reference only objects
that exist, one SparkApplication template with Spark settings equal to spark_conf/cluster.conf, a
DAG (run here with Airflow replaced by recorders) whose every job is that template with an existing
job file and CLI arguments that parse, the image's Delta jars and Spark version equal to the pinned
ones, and wrapper scripts that pass bash -n and shellcheck and build the documented commands."""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import tomllib
import types
from pathlib import Path
from typing import Any, ClassVar, Self
from unittest import mock

import pyspark
import pytest
import yaml
from pyspark.find_spark_home import _find_spark_home

from presage.cli import _parser
from presage.config import Settings
from presage.scoring.predict import GOALS
from presage.session import read_profile

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
DAG = DEPLOY / "airflow" / "presage_dag.py"
SCRIPTS = [DEPLOY / "submit.sh", DEPLOY / "package.sh"]
IMAGE_ROOT = "/opt/presage"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _documents() -> list[tuple[Path, dict]]:
    found = []
    for path in sorted(KUBERNETES.rglob("*.yaml")):
        found += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    return found


DOCUMENTS = _documents()
(TEMPLATE,) = [doc for _, doc in DOCUMENTS if doc["kind"] == "SparkApplication"]  # one spec for every job


@functools.cache
def _dag_run() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Runs the DAG file with Airflow's DAG and operators replaced by recorders (Airflow is not
    installed here): dag_id -> the DAG's arguments plus "tasks" (task_id -> the operator's
    arguments), and the file's globals."""
    dags: dict[str, dict[str, Any]] = {}

    class Dag:
        current: ClassVar[dict[str, Any]] = {}

        def __init__(self, **kwargs: Any):
            self.kwargs = {**kwargs, "tasks": {}}

        def __enter__(self) -> Self:
            assert self.kwargs["dag_id"] not in dags
            dags[self.kwargs["dag_id"]] = Dag.current = self.kwargs
            return self

        def __exit__(self, *exc: object) -> None:
            Dag.current = {}

    class Operator:
        def __init__(self, **kwargs: Any):
            assert kwargs["task_id"] not in Dag.current["tasks"], kwargs["task_id"]
            Dag.current["tasks"][kwargs["task_id"]] = kwargs

        def __rshift__(self, other: Operator) -> Operator:
            return other

    operators = "airflow.providers.cncf.kubernetes.operators"
    modules = {name: types.ModuleType(name) for name in (
        "airflow", "airflow.sdk", "airflow.providers", "airflow.providers.cncf", "airflow.providers.cncf.kubernetes",
        operators, f"{operators}.pod", f"{operators}.spark_kubernetes")}
    modules["airflow.sdk"].__dict__.update(DAG=Dag, Param=dict, chain=lambda *tasks: None)
    modules[f"{operators}.pod"].KubernetesPodOperator = Operator
    modules[f"{operators}.spark_kubernetes"].SparkKubernetesOperator = Operator
    with mock.patch.dict(sys.modules, modules):
        namespace = runpy.run_path(str(DAG))
    return dags, namespace


def _applications() -> dict[str, dict]:
    """metadata.name -> the SparkApplication of every Spark task of the DAGs."""
    dags, _ = _dag_run()
    specs = [task["template_spec"] for dag in dags.values() for task in dag["tasks"].values() if "template_spec" in task]
    return {spec["metadata"]["name"]: spec for spec in specs}


def _defined(kind: str) -> set[str]:
    return {doc["metadata"]["name"] for _, doc in DOCUMENTS if doc["kind"] == kind}


def _pod_specs() -> list[tuple[str, dict, list[dict]]]:
    """(where, volumes, containers) of every pod the manifests make, SparkApplications included."""
    pods = []
    for path, doc in DOCUMENTS:
        where = f"{path.relative_to(KUBERNETES)}:{doc['kind']}"
        if doc["kind"] == "Pod":
            pods.append((where, doc["spec"].get("volumes", []), doc["spec"]["containers"]))
        elif doc["kind"] == "Deployment":
            spec = doc["spec"]["template"]["spec"]
            pods.append((where, spec.get("volumes", []), spec["containers"]))
        elif doc["kind"] == "SparkApplication":
            spec = doc["spec"]
            pods.append((where, spec.get("volumes", []), [spec["driver"], spec["executor"]]))
    return pods


def test_every_manifest_parses_with_its_required_keys():
    required = {
        "SparkApplication": ("spec.type", "spec.mode", "spec.sparkVersion", "spec.image", "spec.mainApplicationFile",
                             "spec.driver.serviceAccount", "spec.executor.instances"),
        "Deployment": ("spec.selector.matchLabels", "spec.template.metadata.labels", "spec.template.spec.containers"),
        "Service": ("spec.selector", "spec.ports"),
        "ConfigMap": ("data",),
        "PersistentVolumeClaim": ("spec.accessModes", "spec.resources.requests.storage"),
        "Pod": ("spec.containers",),
    }
    kinds = set()
    for path, doc in DOCUMENTS:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), path
        if "pod-templates" not in path.parts:
            assert doc["metadata"]["name"] and doc["metadata"].get("namespace", "presage") == "presage", path
        for dotted in required.get(doc["kind"], ()):
            node = doc
            for key in dotted.split("."):
                assert isinstance(node, dict) and key in node, f"{path}: {doc['kind']} without {dotted}"
                node = node[key]
        kinds.add(doc["kind"])
    assert {"SparkApplication", "Deployment", "Service", "ConfigMap", "PersistentVolumeClaim", "Pod",
            "Namespace", "ServiceAccount", "Role", "RoleBinding"} <= kinds


def test_objects_referenced_by_pods_exist():
    claims, config_maps = _defined("PersistentVolumeClaim"), _defined("ConfigMap")
    for where, volumes, containers in _pod_specs():
        names = {v["name"] for v in volumes}
        for volume in volumes:
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, where
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, where
        for container in containers:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in names, f"{where}: mount of an undeclared volume {mount['name']}"
            for env in container.get("env", []):
                secret = env.get("valueFrom", {}).get("secretKeyRef")
                # The one Secret is created by hand (docs/deploy.md), never committed.
                assert secret is None or secret == {"name": "presage-secrets", "key": "PRESAGE_HMAC_KEY"}, where
            image = container.get("image")
            assert image is None or image.startswith("redis:") or image == f"presage:{VERSION}", where
    accounts = _defined("ServiceAccount")
    for name, app in _applications().items():
        assert app["spec"]["driver"]["serviceAccount"] in accounts, name
        assert app["spec"]["image"] == f"presage:{VERSION}", name


def test_services_select_deployments_and_their_ports():
    deployments = [doc for _, doc in DOCUMENTS if doc["kind"] == "Deployment"]
    for _, service in [(p, d) for p, d in DOCUMENTS if d["kind"] == "Service"]:
        matches = [d for d in deployments if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matches) == 1, service["metadata"]["name"]
        ports = {p["name"] for c in matches[0]["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports, service["metadata"]["name"]
    for deployment in deployments:
        assert deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def _job_of(application: dict) -> tuple[str, str]:
    """(job file stem, presage subcommand) of a SparkApplication, read from jobs/<stem>.py."""
    main = application["spec"]["mainApplicationFile"]
    assert main.startswith(f"local://{IMAGE_ROOT}/jobs/"), main
    stem = Path(main).stem
    source = ROOT / "jobs" / f"{stem}.py"
    assert source.is_file(), f"{main}: no {source.relative_to(ROOT)}"
    subcommand = re.search(r'main\(\["([a-z-]+)"', source.read_text())
    assert subcommand, f"{source} does not call presage.cli.main"
    return stem, subcommand.group(1)


def test_the_spark_application_template_matches_the_cluster_profile_and_pyspark():
    profile = read_profile(str(ROOT / "spark_conf" / "cluster.conf"))
    expected = {k: v for k, v in profile.items() if k != "spark.jars.packages"}  # jars are in the image
    spec = TEMPLATE["spec"]
    assert spec["sparkConf"] == expected, "spark-application.yaml: sparkConf differs from spark_conf/cluster.conf"
    assert (spec["type"], spec["mode"], spec["sparkVersion"]) == ("Python", "cluster", pyspark.__version__)
    assert spec["restartPolicy"]["type"] == "Never"
    assert spec["arguments"] == ["--config", "/etc/presage/presage.yaml"]


def test_dag_runs_its_tasks_on_their_schedules():
    dags, namespace = _dag_run()
    assert set(namespace["GOALS"]) == set(GOALS), "the weekly DAG must train every goal presage score loads"
    assert {dag_id: (dag["schedule"], set(dag["tasks"])) for dag_id, dag in dags.items()} == {
        "presage_daily": ("0 3 * * *", {"ingest", "build_profiles", "build_features", "feast_apply", "materialize",
                                        "score", "monitor", "report", "retention"}),
        "presage_weekly_training": ("0 6 * * 0", {f"train_{goal}" for goal in GOALS}),
        "presage_erase": (None, {"erase"}),
    }
    (feast_doc,) = [doc for path, doc in DOCUMENTS if path.name == "feast-apply.yaml"]
    assert dags["presage_daily"]["tasks"]["feast_apply"]["pod_template_dict"] == feast_doc


def test_every_job_is_the_template_with_its_name_file_and_arguments():
    _, namespace = _dag_run()
    applications = _applications()
    assert set(applications) == {f"presage-{job}" for job in namespace["JOBS"]}, "a job of JOBS that no DAG runs"
    for name, app in applications.items():
        assert app["metadata"]["labels"]["app.kubernetes.io/name"] == name
        assert "JOB" not in json.dumps(app), f"{name}: a placeholder of the template is left"
        restored = copy.deepcopy(app)
        restored["metadata"]["name"] = restored["metadata"]["labels"]["app.kubernetes.io/name"] = "presage-JOB"
        restored["spec"]["mainApplicationFile"] = TEMPLATE["spec"]["mainApplicationFile"]
        restored["spec"]["arguments"] = restored["spec"]["arguments"][:len(TEMPLATE["spec"]["arguments"])]
        assert restored == TEMPLATE, f"{name} differs from spark-application.yaml beyond name, file and arguments"


def test_job_arguments_parse_with_the_presage_cli():
    for name, app in _applications().items():
        _, subcommand = _job_of(app)
        arguments = app["spec"]["arguments"]
        assert arguments[:2] == ["--config", "/etc/presage/presage.yaml"], name
        try:
            parsed = _parser().parse_args([subcommand, *arguments])
        except SystemExit:
            pytest.fail(f"{name}: `presage {subcommand} {' '.join(arguments)}` does not parse")
        if subcommand == "train":
            assert name == f"presage-train-{parsed.model.replace('_', '-')}", name


def test_config_map_holds_a_valid_presage_config_and_feast_store(tmp_path, monkeypatch):
    from feast.repo_config import load_repo_config

    (config,) = [doc for _, doc in DOCUMENTS if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "presage-config"]
    settings = Settings.model_validate(yaml.safe_load(config["data"]["presage.yaml"]))
    assert settings.feast.repo == f"{IMAGE_ROOT}/feature_repo" and settings.mlflow.tracking_uri.startswith("http://mlflow.")
    store = tmp_path / "feature_store.yaml"
    store.write_text(config["data"]["feature_store.yaml"])
    monkeypatch.setenv("PRESAGE_HOME", "/lake")
    repo = load_repo_config(tmp_path, store)
    assert repo.project == "presage" and repo.online_store.type == "redis"
    assert repo.registry.path == "/lake/feast/registry.db"


def test_dockerfile_bakes_the_pinned_delta_jars_and_copies_what_exists():
    text = (KUBERNETES / "Dockerfile").read_text()
    delta = read_profile(str(ROOT / "spark_conf" / "cluster.conf"))["spark.jars.packages"]
    assert f"ARG DELTA_PACKAGE={delta}\n" in text
    assert "FROM python:3.11-" in text and ">=3.11,<3.12" in (ROOT / "pyproject.toml").read_text()
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies a missing {source}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_pass_bash_n(script: Path):
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    assert os.access(script, os.X_OK), f"{script.name} is not executable"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_pass_shellcheck(script: Path):
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed: `apt-get install -y shellcheck` (.ci/run does)")
    checked = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout


def _submit(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPARK_HOME": _find_spark_home(), "PRESAGE_HOME": "/lake"}
    return subprocess.run(["bash", str(DEPLOY / "submit.sh"), "--dry-run", *args], capture_output=True, text=True,
                          env=env, timeout=30, check=False)


def _options(line: str) -> tuple[list[str], dict[str, list[str]]]:
    words = shlex.split(line)
    options: dict[str, list[str]] = {}
    i = 1
    while words[i].startswith("--"):
        options.setdefault(words[i], []).append(words[i + 1])
        i += 2
    return words[i:], options


def test_submit_standalone_runs_the_installed_interpreter_in_client_mode():
    done = _submit("--target", "standalone", "--master", "spark://head:7077", "--python", "/opt/presage/bin/python",
                   "build-profiles", "--config", "c.yaml")
    assert done.returncode == 0, done.stderr
    rest, options = _options(done.stdout)
    assert rest == [str(ROOT / "jobs" / "build_profiles.py"), "--config", "c.yaml"]
    assert options["--master"] == ["spark://head:7077"] and options["--deploy-mode"] == ["client"]
    assert options["--properties-file"] == [str(ROOT / "spark_conf" / "cluster.conf")]
    assert {"spark.pyspark.python=/opt/presage/bin/python", "spark.pyspark.driver.python=/opt/presage/bin/python"} <= set(options["--conf"])


def test_submit_yarn_cluster_ships_the_packed_env_repo_and_config(tmp_path):
    env, repo, config = tmp_path / "presage-env.tar.gz", tmp_path / "feature_repo.tar.gz", tmp_path / "prod.yaml"
    for path in (env, repo, config):
        path.write_text("")
    done = _submit("--target", "yarn", "--deploy-mode", "cluster", "--env-archive", str(env), "--repo-archive", str(repo),
                   "score", "--config", str(config))
    assert done.returncode == 0, done.stderr
    rest, options = _options(done.stdout)
    assert rest[1:] == ["--config", "prod.yaml"]
    assert options["--archives"] == [f"{env}#environment,{repo}#feature_repo"]
    assert options["--files"] == [str(config)]
    assert "spark.pyspark.python=./environment/bin/python" in options["--conf"]
    assert "spark.yarn.appMasterEnv.PRESAGE_HOME=/lake" in options["--conf"]
    assert not any(c.startswith("spark.pyspark.driver.python") for c in options["--conf"])


def test_submit_kubernetes_runs_the_job_inside_the_image():
    done = _submit("--target", "kubernetes", "--master", "k8s://https://api:6443", "--image", f"presage:{VERSION}",
                   "train", "--model", "churn_risk")
    assert done.returncode == 0, done.stderr
    rest, options = _options(done.stdout)
    assert rest == [f"local://{IMAGE_ROOT}/jobs/train.py", "--model", "churn_risk"]
    confs = dict(c.split("=", 1) for c in options["--conf"])
    assert confs["spark.jars.packages"] == "" and confs["spark.kubernetes.container.image"] == f"presage:{VERSION}"
    for role in ("driver", "executor"):
        assert Path(confs[f"spark.kubernetes.{role}.podTemplateFile"]).is_file()
    assert confs["spark.kubernetes.authenticate.driver.serviceAccountName"] in _defined("ServiceAccount")


@pytest.mark.parametrize("args, message", [
    (["no_such_job"], "no job no_such_job"),
    (["--target", "standalone", "ingest"], "needs --master spark://"),
    (["--target", "standalone", "--master", "spark://h:7077", "--deploy-mode", "cluster", "ingest"], "client mode only"),
    (["--target", "kubernetes", "--master", "k8s://https://api:6443", "ingest"], "needs --image"),
    (["--target", "mesos", "ingest"], "unknown target"),
    (["--env-archive", "/nonexistent/env.tar.gz", "ingest"], "deploy/package.sh"),
])
def test_submit_refuses_bad_input_with_a_clear_message(args: list[str], message: str):
    done = _submit(*args)
    assert done.returncode == 2 and message in done.stderr, done.stderr

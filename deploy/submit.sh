#!/usr/bin/env bash
# Run one presage job (jobs/<job>.py) with spark-submit on a local, standalone, YARN or Kubernetes
# master, shipping the Python package the way Spark documents for each (docs/deploy.md).
#
#   deploy/submit.sh [options] <job> [job arguments...]
#
#   deploy/submit.sh --target standalone --master spark://head:7077 --python /opt/presage/bin/python \
#       ingest --config /etc/presage/presage.yaml
#   deploy/submit.sh --target yarn --env-archive dist/presage-env.tar.gz score --config prod.yaml
#   deploy/submit.sh --target kubernetes --master k8s://https://api.k8s:6443 --image registry/presage:0.1.0 \
#       train --model churn_risk --config /etc/presage/presage.yaml
#
# Options (before the job name):
#   --target T           local (default), standalone, yarn or kubernetes
#   --master URL         standalone: spark://host:port; kubernetes: k8s://https://host:port
#   --deploy-mode M      yarn: client (default) or cluster; kubernetes: cluster; local, standalone: client
#   --properties-file F  Spark profile (default spark_conf/cluster.conf; local: spark_conf/local.conf)
#   --python P           interpreter with presage installed, at the same path on every node
#                        (default: python3 on PATH); the driver uses it in client mode
#   --env-archive A      packed virtualenv from deploy/package.sh, shipped with --archives A#environment;
#                        executors (and a cluster-mode driver) run ./environment/bin/python
#   --repo-archive A     the Feast repository packed by deploy/package.sh, unpacked as ./feature_repo
#                        in a YARN cluster-mode driver (default dist/feature_repo.tar.gz)
#   --image I            kubernetes: image built from deploy/kubernetes/Dockerfile
#   --namespace N        kubernetes namespace (default presage)
#   --conf K=V           any Spark setting; repeatable; beats the properties file
#   --dry-run            print the spark-submit command instead of running it
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE_ROOT=/opt/presage  # where deploy/kubernetes/Dockerfile puts jobs/ and feature_repo/

die() {
  echo "deploy/submit.sh: $*" >&2
  exit 2
}

known_jobs() {
  local file names=()
  for file in "$ROOT"/jobs/*.py; do
    file="${file##*/}"
    names+=("${file%.py}")
  done
  echo "${names[*]}"
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

target=local
master=""
deploy_mode=""
properties=""
python="${PRESAGE_PYTHON:-}"
env_archive=""
repo_archive="$ROOT/dist/feature_repo.tar.gz"
image=""
namespace=presage
dry_run=false
confs=()

while [ $# -gt 0 ]; do
  case "$1" in
    --target) target="${2:?--target needs a value}"; shift 2 ;;
    --master) master="${2:?--master needs a value}"; shift 2 ;;
    --deploy-mode) deploy_mode="${2:?--deploy-mode needs a value}"; shift 2 ;;
    --properties-file) properties="${2:?--properties-file needs a value}"; shift 2 ;;
    --python) python="${2:?--python needs a value}"; shift 2 ;;
    --env-archive) env_archive="${2:?--env-archive needs a value}"; shift 2 ;;
    --repo-archive) repo_archive="${2:?--repo-archive needs a value}"; shift 2 ;;
    --image) image="${2:?--image needs a value}"; shift 2 ;;
    --namespace) namespace="${2:?--namespace needs a value}"; shift 2 ;;
    --conf) confs+=(--conf "${2:?--conf needs KEY=VALUE}"); shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (options come before the job name; see --help)" ;;
    *) break ;;
  esac
done

[ $# -gt 0 ] || die "no job given; one of: $(known_jobs)"
job="${1//-/_}"
shift
if [ ! -f "$ROOT/jobs/$job.py" ]; then
  die "no job $job (jobs/$job.py); one of: $(known_jobs)"
fi
job_args=("$@")

if [ -n "${SPARK_HOME:-}" ]; then
  spark_submit="$SPARK_HOME/bin/spark-submit"
else
  spark_submit="$(command -v spark-submit || true)"
  [ -n "$spark_submit" ] || die "spark-submit not found: set SPARK_HOME or put pyspark's bin on PATH"
fi

if [ -z "$properties" ]; then
  if [ "$target" = local ]; then properties="$ROOT/spark_conf/local.conf"; else properties="$ROOT/spark_conf/cluster.conf"; fi
fi
[ -f "$properties" ] || die "properties file $properties not found"

if [ -n "$env_archive" ] && [[ "$env_archive" != *://* ]] && [ ! -f "$env_archive" ]; then
  die "packed environment $env_archive not found (build it with deploy/package.sh)"
fi

# The interpreter of an installed presage, for a driver and executors that run on nodes where it exists.
installed_python() {
  local chosen="${python:-$(command -v python3 || true)}"
  [ -n "$chosen" ] || die "no python3 on PATH: pass --python"
  echo "$chosen"
}

args=(--properties-file "$properties" --name "presage-${job//_/-}")
archives=()  # spark-submit takes one --archives list (comma-separated), likewise --files
files=()
app="$ROOT/jobs/$job.py"

case "$target" in
  local)
    [ -z "$deploy_mode" ] || [ "$deploy_mode" = client ] || die "local runs in client mode only"
    py="$(installed_python)"
    args+=(--master "${master:-local[*]}" --conf "spark.pyspark.python=$py" --conf "spark.pyspark.driver.python=$py")
    ;;
  standalone)
    [[ "$master" == spark://* ]] || die "--target standalone needs --master spark://host:port"
    # Spark's standalone master runs Python applications in client mode only.
    [ -z "$deploy_mode" ] || [ "$deploy_mode" = client ] || die "a standalone master runs Python drivers in client mode only"
    py="$(installed_python)"
    args+=(--master "$master" --deploy-mode client --conf "spark.pyspark.driver.python=$py")
    if [ -n "$env_archive" ]; then
      archives+=("$env_archive#environment")
      args+=(--conf spark.pyspark.python=./environment/bin/python)
    else
      args+=(--conf "spark.pyspark.python=$py")
    fi
    ;;
  yarn)
    [ -z "$master" ] || [ "$master" = yarn ] || die "--target yarn takes its master from HADOOP_CONF_DIR; drop --master"
    deploy_mode="${deploy_mode:-client}"
    args+=(--master yarn --deploy-mode "$deploy_mode")
    if [ -n "$env_archive" ]; then
      archives+=("$env_archive#environment")
      args+=(--conf spark.pyspark.python=./environment/bin/python)
    else
      args+=(--conf "spark.pyspark.python=$(installed_python)")
    fi
    if [ "$deploy_mode" = client ]; then
      args+=(--conf "spark.pyspark.driver.python=$(installed_python)")
    elif [ "$deploy_mode" = cluster ]; then
      # The driver runs in a YARN container: it gets the Feast repository and the config file in its
      # working directory, and the lakehouse location from the submitter's environment.
      [ -f "$repo_archive" ] || die "Feast repository archive $repo_archive not found (deploy/package.sh builds it)"
      archives+=("$repo_archive#feature_repo")
      for name in PRESAGE_HOME PRESAGE_REDIS; do
        if [ -n "${!name:-}" ]; then args+=(--conf "spark.yarn.appMasterEnv.$name=${!name}"); fi
      done
      for i in "${!job_args[@]}"; do
        if [ "${job_args[$i]}" = --config ] && [ $((i + 1)) -lt ${#job_args[@]} ]; then
          config="${job_args[$((i + 1))]}"
          [ -f "$config" ] || die "config file $config not found"
          files+=("$config")
          job_args[i + 1]="$(basename "$config")"
        fi
      done
    else
      die "--deploy-mode must be client or cluster"
    fi
    ;;
  kubernetes)
    [[ "$master" == k8s://* ]] || die "--target kubernetes needs --master k8s://https://host:port"
    [ -n "$image" ] || die "--target kubernetes needs --image (built from deploy/kubernetes/Dockerfile)"
    [ -z "$deploy_mode" ] || [ "$deploy_mode" = cluster ] || die "kubernetes runs the driver in a pod (cluster mode)"
    templates="$ROOT/deploy/kubernetes/pod-templates"
    # The image holds presage, its interpreter (PYSPARK_PYTHON) and Delta's jars, so nothing is
    # resolved from Maven at start; the pod templates mount the lakehouse, config and secret.
    args+=(
      --master "$master" --deploy-mode cluster
      --conf spark.jars.packages=
      --conf "spark.kubernetes.container.image=$image"
      --conf "spark.kubernetes.namespace=$namespace"
      --conf spark.kubernetes.authenticate.driver.serviceAccountName=presage-spark
      --conf "spark.kubernetes.driver.podTemplateFile=$templates/driver.yaml"
      --conf "spark.kubernetes.executor.podTemplateFile=$templates/executor.yaml"
    )
    if [ -n "$env_archive" ]; then
      [[ "$env_archive" == *://* ]] || die "on kubernetes --env-archive must be a URL the pods can read (s3a://, https://)"
      archives+=("$env_archive#environment")
      args+=(--conf spark.pyspark.python=./environment/bin/python)
    fi
    app="local://$IMAGE_ROOT/jobs/$job.py"
    ;;
  *)
    die "unknown target $target (local, standalone, yarn, kubernetes)"
    ;;
esac

if [ ${#archives[@]} -gt 0 ]; then args+=(--archives "$(IFS=,; echo "${archives[*]}")"); fi
if [ ${#files[@]} -gt 0 ]; then args+=(--files "$(IFS=,; echo "${files[*]}")"); fi
cmd=("$spark_submit" "${args[@]}" "${confs[@]}" "$app" "${job_args[@]}")
if $dry_run; then
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi
exec "${cmd[@]}"

"""spark-submit entry point: `spark-submit --properties-file spark_conf/cluster.conf jobs/score.py [--as-of 2026-10-01] [--config conf.yaml]`.

Arguments are those of `presage score`; the submitted session is reused as it is.
"""

import sys

from presage.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))

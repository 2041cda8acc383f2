"""spark-submit entry point: `spark-submit --properties-file spark_conf/cluster.conf jobs/build_features.py [--config conf.yaml] ...`.

Arguments are those of `presage build-features`; the submitted session is reused as it is.
"""

import sys

from presage.cli import main

if __name__ == "__main__":
    sys.exit(main(["build-features", *sys.argv[1:]]))

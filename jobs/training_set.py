"""spark-submit entry point: `spark-submit --properties-file spark_conf/cluster.conf jobs/training_set.py [--config conf.yaml] ...`.

Arguments are those of `presage training-set`; the submitted session is reused as it is.
"""

import sys

from presage.cli import main

if __name__ == "__main__":
    sys.exit(main(["training-set", *sys.argv[1:]]))

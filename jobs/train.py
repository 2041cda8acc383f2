"""spark-submit entry point: `spark-submit --properties-file spark_conf/cluster.conf jobs/train.py --model purchase_propensity [--config conf.yaml]`.

Arguments are those of `presage train`; the submitted session is reused as it is.
"""

import sys

from presage.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))

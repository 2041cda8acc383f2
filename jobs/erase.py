"""spark-submit entry point: `spark-submit --properties-file spark_conf/cluster.conf jobs/erase.py --customer C123 [--config conf.yaml]`.

Arguments are those of `presage erase`; the submitted session is reused as it is.
"""

import sys

from presage.cli import main

if __name__ == "__main__":
    sys.exit(main(["erase", *sys.argv[1:]]))

"""spark-submit entry point: `spark-submit --properties-file spark_conf/cluster.conf jobs/generate.py [--config conf.yaml] ...`.

Arguments are those of `presage generate`; the submitted session is reused as it is.
"""

import sys

from presage.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))

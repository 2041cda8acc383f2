"""spark-submit entry point: `spark-submit --properties-file spark_conf/cluster.conf jobs/retention.py [--days 395] [--config conf.yaml]`.

Arguments are those of `presage retention`; the submitted session is reused as it is.
"""

import sys

from presage.cli import main

if __name__ == "__main__":
    sys.exit(main(["retention", *sys.argv[1:]]))

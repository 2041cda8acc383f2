"""spark-submit entry point: `spark-submit --properties-file spark_conf/cluster.conf jobs/report.py [--as-of 2026-10-01] [--output report.html] [--config conf.yaml]`.

Arguments are those of `presage report`; the submitted session is reused as it is.
"""

import sys

from presage.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))

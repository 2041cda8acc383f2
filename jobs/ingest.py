"""spark-submit entry point: `spark-submit --properties-file spark_conf/cluster.conf jobs/ingest.py [--config conf.yaml] ...`.

Arguments are those of `presage ingest`; the submitted session is reused as it is.
"""

import sys

from presage.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))

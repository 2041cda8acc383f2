"""spark-submit entry point: `spark-submit --properties-file spark_conf/cluster.conf jobs/materialize.py [--config conf.yaml] ...`.

Arguments are those of `presage materialize`; the submitted session is reused as it is.
"""

import sys

from presage.cli import main

if __name__ == "__main__":
    sys.exit(main(["materialize", *sys.argv[1:]]))

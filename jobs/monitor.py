"""spark-submit entry point: `spark-submit --properties-file spark_conf/cluster.conf jobs/monitor.py [--as-of 2026-10-01] [--fail-on-alert] [--config conf.yaml]`.

Arguments are those of `presage monitor`; the submitted session is reused as it is. With
`--fail-on-alert` the driver exits with code 3 when a check is at 'alert', so a scheduler marks the run failed.
"""

import sys

from presage.cli import main

if __name__ == "__main__":
    sys.exit(main(["monitor", *sys.argv[1:]]))

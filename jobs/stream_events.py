"""spark-submit entry point: `spark-submit --properties-file spark_conf/cluster.conf jobs/stream_events.py [--available-now] [--config conf.yaml]`.

Arguments are those of `presage stream`; the submitted session is reused as it is. The driver runs
until stopped (or, with `--available-now`, until what has landed is processed). With the Kafka
source (`stream.source: kafka`) add `--packages org.apache.spark:spark-sql-kafka-0-10_2.13:<spark version>`.
"""

import sys

from presage.cli import main

if __name__ == "__main__":
    sys.exit(main(["stream", *sys.argv[1:]]))

"""Identity resolution against the generator's truth: pairwise precision and recall.

Run after `presage generate` + `presage ingest` + `presage build-profiles` on the same lakehouse:

    PRESAGE_HOME=/path/to/lakehouse python bench/identity_quality.py [--config conf.yaml]
"""

from __future__ import annotations

import argparse

from presage.config import load_settings
from presage.lakehouse import Lakehouse
from presage.profiles.evaluate import evaluate
from presage.session import get_spark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML settings (default: the embedded default)")
    args = parser.parse_args()
    settings = load_settings(args.config)
    spark = get_spark("presage-bench-identity", settings)
    report = evaluate(spark, settings, Lakehouse.of(settings))
    print(report)
    for name, s in (("linkable", report.linkable), ("all", report.all)):
        print(f"{name:9s} identifiers={s.identifiers:,d} true_pairs={s.true_pairs:,d} predicted_pairs={s.predicted_pairs:,d} correct={s.correct_pairs:,d}")


if __name__ == "__main__":
    main()

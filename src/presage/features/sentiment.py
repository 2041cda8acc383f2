"""Sentiment of review and social texts with VADER, whose lexicon ships inside its wheel.

VADER is a rule-based scorer built for short social-media texts; nothing is downloaded at run
time. It scores English; other languages score near 0 (neutral), which the README lists as a limit.
"""

from __future__ import annotations

from functools import cache

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType


@cache
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def polarity(texts: pd.Series) -> pd.Series:
    """VADER compound score in [-1, 1] per text; null for an empty or missing text."""
    analyzer = _analyzer()
    return texts.map(lambda t: analyzer.polarity_scores(t)["compound"] if isinstance(t, str) and t.strip() else None).astype("float64")


_polarity_udf = F.pandas_udf(polarity, DoubleType())


def sentiment(text: Column) -> Column:
    """Spark column of the VADER compound score of ``text``."""
    return _polarity_udf(text)

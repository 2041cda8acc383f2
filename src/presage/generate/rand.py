"""Deterministic randomness as Spark columns.

Every draw hashes (seed, tag, row keys) with xxhash64, so a value depends only on the seed and the
row, never on partitioning or execution order: the same seed gives the same data at any scale.
"""

from __future__ import annotations

import math

from pyspark.sql import Column
from pyspark.sql import functions as F

_MANTISSA = (1 << 53) - 1


class Draws:
    """Uniform, normal, exponential, Poisson and categorical draws keyed by a seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def uniform(self, tag: str, *keys: Column | str) -> Column:
        """U[0, 1) from the hash of (seed, tag, keys)."""
        h = F.xxhash64(F.lit(self.seed), F.lit(tag), *keys)
        return h.bitwiseAND(F.lit(_MANTISSA)) / float(1 << 53)

    def normal(self, tag: str, *keys: Column | str) -> Column:
        """N(0, 1) by Box-Muller."""
        u1 = F.greatest(self.uniform(tag + ":n1", *keys), F.lit(1e-12))
        u2 = self.uniform(tag + ":n2", *keys)
        return F.sqrt(-2.0 * F.log(u1)) * F.cos(2.0 * math.pi * u2)

    def exponential(self, tag: str, *keys: Column | str) -> Column:
        """Exp(1)."""
        return -F.log(1.0 - self.uniform(tag, *keys))

    def poisson(self, tag: str, mean: Column, *keys: Column | str) -> Column:
        """Poisson(mean): exact inverse CDF up to mean 30, normal approximation above."""
        u = self.uniform(tag, *keys)
        exact = F.aggregate(
            F.sequence(F.lit(1), F.lit(80)),
            F.struct(F.lit(0).alias("k"), F.exp(-mean).alias("p"), F.exp(-mean).alias("c")),
            lambda acc, i: F.when(
                acc["c"] < u,
                F.struct(
                    i.alias("k"),
                    (acc["p"] * mean / i).alias("p"),
                    (acc["c"] + acc["p"] * mean / i).alias("c"),
                ),
            ).otherwise(acc),
            lambda acc: acc["k"],
        )
        approx = F.greatest(F.lit(0), F.round(mean + F.sqrt(mean) * self.normal(tag, *keys)).cast("int"))
        return F.when(mean <= 30, exact).otherwise(approx)

    def choice(self, tag: str, options: list[str], weights: list[float] | None, *keys: Column | str) -> Column:
        """One of ``options`` with the given (unnormalized) weights."""
        return self.choice_from(self.uniform(tag, *keys), options, weights)

    @staticmethod
    def choice_from(u: Column, options: list[str], weights: list[float] | None = None) -> Column:
        weights = weights or [1.0] * len(options)
        total = float(sum(weights))
        expr = F.lit(options[-1])
        cumulative = 0.0
        branches = []
        for option, weight in zip(options[:-1], weights[:-1]):
            cumulative += weight / total
            branches.append((cumulative, option))
        for bound, option in reversed(branches):
            expr = F.when(u < bound, F.lit(option)).otherwise(expr)
        return expr

    def pick(self, tag: str, count: int | Column, *keys: Column | str) -> Column:
        """An integer in [0, count)."""
        return F.floor(self.uniform(tag, *keys) * count).cast("long")

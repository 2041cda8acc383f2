"""presage: predictive marketing on Spark.

Importing the package never starts Spark; sessions are built by :func:`presage.session.get_spark`.
"""

__version__ = "0.1.0"

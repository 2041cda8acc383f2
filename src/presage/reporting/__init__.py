"""`presage report`: one self-contained HTML page of the charts people look at (docs/report.md)."""

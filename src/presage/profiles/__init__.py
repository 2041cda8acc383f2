"""Silver layer: identity resolution, unified customer profiles and clean facts keyed by person."""

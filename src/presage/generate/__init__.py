"""Synthetic raw drops with planted, learnable behaviour (see :mod:`presage.generate.run`)."""

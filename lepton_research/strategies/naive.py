"""Naive fine-tuning: train each task in turn with the plain loss. The lower bound every method must beat."""

from lepton_research.strategies.base import Strategy


class Naive(Strategy):
    pass

"""stance: which actor takes which stance, sentence by sentence.

    >>> from pipeline import predict
    >>> predict("The Kremlin rejected the ceasefire proposal.")  # doctest: +SKIP
"""

from pipeline.labels import ACTORS, STANCES
from pipeline.predictor import ModelNotTrainedError, SentencePrediction, predict

__all__ = ["predict", "SentencePrediction", "ModelNotTrainedError", "ACTORS", "STANCES"]

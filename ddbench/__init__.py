"""ddbench: a dataset-distillation benchmark whose methods, datasets, networks and evaluators are plugins."""

from ddbench.api import (
    Context,
    DatasetSpec,
    DistilledSet,
    Distiller,
    EvalResult,
    Evaluator,
    GenerativeDistiller,
    ImageSet,
    NetworkSpec,
)
from ddbench.config import doc
from ddbench.hookspecs import hookimpl
from ddbench.registry import Lazy

__version__ = "0.1.0"
__all__ = [
    "Context", "DatasetSpec", "DistilledSet", "Distiller", "EvalResult", "Evaluator", "GenerativeDistiller",
    "ImageSet", "Lazy", "NetworkSpec", "doc", "hookimpl", "__version__",
]

"""ddbench-gdd-global-local: generative dataset distillation balancing global structure and local details."""

from ddbench_gdd.loss import GlobalLocalMatch, local_distance

__all__ = ["GlobalLocalMatch", "local_distance"]

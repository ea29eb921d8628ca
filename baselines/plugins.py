"""The built-in methods' plugins, one per ``ddbench`` entry point (``dc = "ddbench_baselines.plugins:dc"``).

Each registers its method by import path: a command imports only the methods it uses.
"""

from ddbench.plugins import LazyMethod

random = LazyMethod("random", "ddbench_baselines.random_real:RandomReal")
herding = LazyMethod("herding", "ddbench_baselines.herding:Herding")
dc = LazyMethod("dc", "ddbench_baselines.dc:DC")
dsa = LazyMethod("dsa", "ddbench_baselines.dc:DSA")
dm = LazyMethod("dm", "ddbench_baselines.dm:DM")
cgan = LazyMethod("cgan", "ddbench_baselines.cgan:CGAN")
dim = LazyMethod("dim", "ddbench_baselines.dim:DiM")

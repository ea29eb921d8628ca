"""ddbench's built-in methods (import name ``ddbench_baselines``), each a plugin registered through the
``ddbench`` entry-point group exactly like a third-party package."""

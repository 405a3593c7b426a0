"""Running the analysis: Dask clusters, the RabbitMQ link, the plotter and the ``hzz`` CLI.

Knows nothing of cuts or cross-sections; ``analysis`` holds the physics.
"""

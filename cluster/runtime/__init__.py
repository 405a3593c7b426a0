"""The Dask runtime: starting or joining a cluster, its settings, the worker watchdog,
``hzz run`` on a client, and ``hzz cluster`` (the Docker stack's processes on one machine)."""

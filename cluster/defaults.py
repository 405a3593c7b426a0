"""Defaults the command line shows in its help, apart from the modules that use them.

Building ``hzz --help`` (and every command's parser) then imports neither pika,
requests nor the analysis: ``hzz run`` starts its cluster sooner.
"""

from __future__ import annotations

#: The broker of the single-machine set-up (RabbitMQ's default guest account).
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_EXCHANGE = "hzz.histograms"
DEFAULT_QUEUE = "hzz.plots"

#: Largest histogram document the plotting service accepts, in bytes.
DEFAULT_MAX_BYTES = 8 * 1024 * 1024

#: Resumes of one file after a dropped connection before ``hzz download`` gives up.
DEFAULT_RETRIES = 3

#: Seconds to wait for a server to connect or answer (``--timeout``).
DEFAULT_TIMEOUT_S = 30.0

#: Longest the plotting service spends drawing one figure (a figure takes about 1-3 s).
DEFAULT_RENDER_TIMEOUT_S = 60.0

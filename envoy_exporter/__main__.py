"""``python -m envoy_exporter``: the same as the ``envoy-exporter`` command."""

import sys

from envoy_exporter.cli import main

sys.exit(main())

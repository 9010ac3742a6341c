"""``python -m vidfer``: the same as the ``vidfer`` command (and what torchrun can launch)."""

import sys

from vidfer.cli import main

sys.exit(main())

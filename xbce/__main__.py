"""``python -m xbce``: the ``xbce`` command line (see ``xbce._cli``)."""

from __future__ import annotations

import sys

from ._cli import main

sys.exit(main())

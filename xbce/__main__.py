"""``python -m xbce``: the ``xbce`` command line (see ``xbce._cli``)."""

from __future__ import annotations

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())

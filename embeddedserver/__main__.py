"""``python -m embeddedserver``: the command line (see ``embeddedserver.cli``)."""

import sys

from .cli import main

sys.exit(main())

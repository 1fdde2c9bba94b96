"""``python -m proximity.service [serve flags]``: the same as ``proximity serve``."""

import sys

from proximity.service.cli import main

sys.exit(main())

"""``python -m aihubmix_async``."""

import sys

from ._cli import main

sys.exit(main())

"""``python -m services.cli`` runs the ``pairforge`` command."""

import sys

from services.cli import main

sys.exit(main())

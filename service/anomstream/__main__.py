"""``python -m anomstream`` runs the CLI."""

import sys

from anomstream.cli import main

sys.exit(main())

"""``python -m secateurs`` (also what ``torchrun -m secateurs`` runs)."""

import sys

from secateurs.cli.main import main

sys.exit(main())

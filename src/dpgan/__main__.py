"""`python -m dpgan ...` (also what `torchrun -m dpgan` runs)."""

import sys

from dpgan.cli import main

sys.exit(main())

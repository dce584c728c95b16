"""`python -m egress`: the command line (cli.py)."""

import sys

from egress.cli import main

sys.exit(main())

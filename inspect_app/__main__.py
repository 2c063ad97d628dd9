"""`python -m inspect_app` runs the command line."""

import sys

from inspect_app.cli import main

sys.exit(main())

"""`python -m evalbench.cli`: the same as `python -m evalbench` and the `evalbench` script."""

import sys

from evalbench.cli import main

sys.exit(main())

import sys

from evalbench.cli import main

sys.exit(main())

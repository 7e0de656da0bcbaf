import sys

from defbench.cli import main

sys.exit(main())

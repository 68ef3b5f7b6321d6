import sys

from sckd.cli import main

sys.exit(main())

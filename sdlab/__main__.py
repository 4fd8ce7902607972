import sys

from sdlab.cli import main

sys.exit(main())

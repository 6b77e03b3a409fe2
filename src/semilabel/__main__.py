import sys

from semilabel.cli import main

sys.exit(main())

"""`python -m semilabel` (also under `torchrun -m semilabel`)."""

import sys

from semilabel.cli import main

if __name__ == "__main__":
    sys.exit(main())

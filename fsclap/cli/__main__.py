"""``python -m fsclap.cli`` (and ``torchrun -m fsclap.cli``): the ``fsclap`` command."""

import sys

from fsclap.cli import main

if __name__ == "__main__":
    sys.exit(main())

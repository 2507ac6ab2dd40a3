import sys

from aurep.cli import main

sys.exit(main())

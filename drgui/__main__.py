import sys

from drgui.cli.main import main

sys.exit(main())

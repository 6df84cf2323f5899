import sys

from tools.ui_check.check import main

sys.exit(main())

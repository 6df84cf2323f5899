"""`python -m openai_test_server --port 0`: prints `READY <base_url>`, serves until SIGTERM."""

import sys

from openai_test_server.server import main

sys.exit(main())

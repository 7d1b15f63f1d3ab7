"""`python -m agent_service` runs the CLI, so child processes need no console script."""

import sys

from agent_service.cli import main

sys.exit(main())

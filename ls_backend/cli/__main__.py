import sys

from ls_backend.cli.main import main

sys.exit(main())

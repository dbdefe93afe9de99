"""``python -m zolib`` = the ``zolib`` command."""
from .cli import main

raise SystemExit(main())

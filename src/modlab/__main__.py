"""`python -m modlab`: the same command as `modlab`."""

from modlab.cli import main

raise SystemExit(main())

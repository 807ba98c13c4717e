"""Allow `python -m awayd`."""

from awayd.cli import main

raise SystemExit(main())

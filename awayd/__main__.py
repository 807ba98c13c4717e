"""Allow `python -m awayd`."""

from awayd.cli.main import main

raise SystemExit(main())

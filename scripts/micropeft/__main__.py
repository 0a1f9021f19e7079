from micropeft.cli import main

raise SystemExit(main())

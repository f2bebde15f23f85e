from appconfig_sync.cli import main

raise SystemExit(main())

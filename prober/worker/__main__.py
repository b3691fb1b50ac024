from prober.worker.main import main

raise SystemExit(main())

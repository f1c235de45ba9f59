"""`python -m prunekit ...`, which is also how torchrun starts it: `torchrun --nproc_per_node N -m prunekit run ...`."""

import sys

from prunekit.cli import main

sys.exit(main())

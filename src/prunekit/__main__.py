"""`python -m prunekit ...`, which is also how torchrun starts it: `torchrun --nproc_per_node N -m prunekit run ...`."""

import os
import sys

# `python -m` puts the current directory first on the import path; prunekit does not want a file there (say a
# matplotlib.py beside a run directory) to shadow an installed package. Modules named with --import are still found
# there (prunekit.user_code searches it last).
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from prunekit.cli import main  # noqa: E402

sys.exit(main())

"""``python -m reprobook.fpga package``: a checkpoint of ch13 -> a tarball for the ZCU102."""

import sys

from reprobook.fpga.deploy import main

sys.exit(main())

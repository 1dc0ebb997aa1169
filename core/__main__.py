import sys

from dicomwire.cli import main

sys.exit(main())

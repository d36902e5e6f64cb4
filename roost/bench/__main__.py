"""``python -m roost.bench …`` is ``roost bench …``."""

import argparse
import sys

from roost.bench import add_arguments, main

if __name__ == "__main__":  # worker processes import this module under another name
    parser = argparse.ArgumentParser(prog="roost bench", description="MQTT load generator")
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))

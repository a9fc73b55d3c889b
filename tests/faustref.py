"""The tests' name for diffaust's Faust reference harness (``diffaust.reference``)."""

from diffaust.reference import *  # noqa: F401,F403
from diffaust.reference import FAUST, build, cache_dir  # noqa: F401

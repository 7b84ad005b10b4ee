import os
import sys

# The plugin's sources, importable without installing.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import sys
from pathlib import Path

# The pipeline package lives beside the tests, in model/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

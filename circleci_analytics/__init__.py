"""circleci-analytics: CircleCI API v2 -> Parquet lake -> DuckDB marts and dashboards."""

from importlib.resources import files
from pathlib import Path

__all__ = ["RESOURCE_CLASSES_CSV", "__version__"]

__version__ = "0.1.0"

#: CircleCI's resource-class table (credits per minute, vCPUs, RAM) as configuration data.
#: Shared by the simulator (to bill jobs) and the warehouse (a seed for right-sizing).
#: Check it against CircleCI's current pricing page before relying on savings figures.
RESOURCE_CLASSES_CSV: Path = Path(str(files(__name__) / "resource_classes.csv"))

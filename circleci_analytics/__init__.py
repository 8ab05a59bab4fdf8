"""circleci-analytics: CircleCI API v2 -> Parquet lake -> DuckDB marts and dashboards."""

from importlib.resources import files
from pathlib import Path

__all__ = ["RESOURCE_CLASSES_CSV", "__version__"]

__version__ = "0.1.0"

#: CircleCI's resource-class table (credits per minute, vCPUs, RAM) as configuration data.
#: One copy, the dbt seed ``sql/seeds/resource_classes.csv``: the warehouse's right-sizing reads
#: it as ``ref('resource_classes')``, the simulator bills jobs with it.
#: Check it against CircleCI's current pricing page before relying on savings figures.
RESOURCE_CLASSES_CSV: Path = Path(str(files(__name__) / "sql" / "seeds" / "resource_classes.csv"))

"""Per-step telemetry: distributions, health flags and the collapse verdict, the run record, W&B."""
from telemetry.health import HealthMonitor
from telemetry.record import RunRecord, read_history, read_json, write_json
from telemetry.tracking import HISTOGRAM_KEYS, Tracker, resolve_mode

__all__ = ["HISTOGRAM_KEYS", "HealthMonitor", "RunRecord", "Tracker", "read_history", "read_json",
           "resolve_mode", "write_json"]

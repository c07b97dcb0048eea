"""Send the tracking events that a failed MLflow store left in the backlog (``metrics/mlflow_backlog.jsonl``).

Each backlog line is one event of :class:`~pix2pix.tracking.tracker.Tracker` (``start``, ``metrics``, ``tags``,
``image``, ``artifact``, ``finish``) with the store ``uri``, ``experiment``, ``run_id`` and the ``local_id``
that ties one tracker's events together. Replay goes run by run in the order written: a run whose ``start``
never reached the store is created then (with its name, params and tags), a known run is continued. After each
run the backlog is rewritten without it, so a replay that fails half-way (the store is down again) resumes
where it stopped and sends nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pix2pix.atomic import write_text_atomic
from pix2pix.errors import DataError
from pix2pix.tracking.tracker import Tracker


def read_backlog(path: Path) -> list[dict[str, Any]]:
    """The events of the backlog at ``path`` (none when it does not exist); DataError names a corrupt line."""
    path = Path(path)
    if not path.is_file():
        return []
    events = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: not a JSON line ({error}); fix or delete that line") from error
    return events


def _replay_run(events: list[dict[str, Any]], uri: str | None) -> str | None:
    """Send one tracker's events; return the run id they went to. Raises on a store failure."""
    first = events[0]
    tracker = Tracker(uri=uri or first["uri"], experiment=first["experiment"], backlog=Path("/dev/null"),
                      run_id=first.get("run_id"), system_metrics=False)
    start = next((event for event in events if event["event"] == "start"), None)
    tracker.start(start["run_name"] if start else None, start["params"] if start else {}, start["tags"] if start else {})
    actions: dict[str, Callable[[dict[str, Any]], None]] = {
        "start": lambda event: None,
        "metrics": lambda event: tracker.log_metrics(event["metrics"], step=event["step"]),
        "tags": lambda event: tracker.set_tags(event["tags"]),
        "image": lambda event: tracker.log_image(Path(event["path"]), key=event["key"], step=event["step"]),
        "artifact": lambda event: tracker.log_artifact(Path(event["path"]), event.get("artifact_path")),
        "finish": lambda event: tracker.finish(event["status"]),
    }
    for event in events:
        actions[event["event"]](event)
        if tracker.failed:
            raise DataError(f"the tracking store at {tracker.uri} failed again during {event['event']}; try later")
    return tracker.run_id


def replay_backlog(path: Path, uri: str | None = None) -> list[str]:
    """Replay every run in the backlog at ``path`` into its store (or ``uri``); return the run ids written.

    The backlog is deleted once empty. Raises DataError when the store fails (what was sent is taken out).
    """
    path = Path(path)
    events = read_backlog(path)
    order = list(dict.fromkeys(event["local_id"] for event in events))
    done = []
    for local_id in order:
        run_events = [event for event in events if event["local_id"] == local_id]
        done.append(_replay_run(run_events, uri))
        events = [event for event in events if event["local_id"] != local_id]
        if events:
            write_text_atomic(path, "".join(json.dumps(event, default=str) + "\n" for event in events))
        else:
            path.unlink(missing_ok=True)
    return [run_id for run_id in done if run_id]

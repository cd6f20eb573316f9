"""Request metrics for a service, in the Prometheus text exposition format (version 0.0.4).

`RequestMetrics` counts what a service answered, per method, route template and status, and
times it in a histogram; `render()` writes the whole registry as `/metrics` serves it. Names
follow Prometheus' conventions: base units (`_seconds`), `_total` on counters, labels of low
cardinality (the route template such as `/orders/{id}`, never the raw path).

Pure and I/O-free (standard library only): passageway.service feeds it from its ASGI wrapper.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds in seconds: Prometheus' client defaults, fit for request latencies."""

UNMATCHED_ROUTE = "<unmatched>"
"""The route label of a request no route matched (a 404): one series, whatever the paths asked."""

REQUESTS = "http_server_requests_total"
ERRORS = "http_server_request_errors_total"
DURATION = "http_server_request_duration_seconds"
IN_FLIGHT = "http_server_requests_in_flight"
INFO = "passageway_service_info"
START_TIME = "process_start_time_seconds"


def escape_label_value(value: str) -> str:
    """A label value as the text format quotes it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text: backslash and newline escaped (quotes stay as they are)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers without a fraction, Go's spellings of infinity and NaN."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def format_labels(labels: Iterable[tuple[str, str]]) -> str:
    pairs = [f'{name}="{escape_label_value(value)}"' for name, value in labels]
    return "{" + ",".join(pairs) + "}" if pairs else ""


def sample_line(name: str, labels: Iterable[tuple[str, str]], value: float) -> str:
    return f"{name}{format_labels(labels)} {format_value(value)}"


def header_lines(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {escape_help(help_text)}", f"# TYPE {name} {kind}"]


@dataclass
class Histogram:
    """One histogram series: a count per bucket (not cumulative here; render() adds them up)."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf's own

    def observe(self, value: float) -> None:
        self.counts[_bucket_index(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it) for each bucket, +Inf last (== count)."""
        running, result = 0, []
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            result.append((bound, running))
        return result


def _bucket_index(bounds: Sequence[float], value: float) -> int:
    """The first bucket whose upper bound is >= value (`le` is inclusive); len(bounds) for +Inf."""
    low, high = 0, len(bounds)
    while low < high:
        middle = (low + high) // 2
        if value <= bounds[middle]:
            high = middle
        else:
            low = middle + 1
    return low


def check_buckets(buckets: Iterable[float]) -> tuple[float, ...]:
    """Bucket bounds sorted, finite and distinct; ValueError naming the problem."""
    bounds = tuple(float(bound) for bound in buckets)
    if not bounds:
        raise ValueError("a histogram needs at least one bucket")
    if any(not math.isfinite(bound) for bound in bounds):
        raise ValueError("bucket bounds must be finite (+Inf is always added)")
    if any(later <= earlier for earlier, later in zip(bounds, bounds[1:])):
        raise ValueError("bucket bounds must increase strictly")
    return bounds


class RequestMetrics:
    """Counters and a latency histogram per (method, route template, status) of one service.

    Safe to update from several threads (a sync endpoint's thread pool, say): one lock guards
    every series, held only for a dictionary update."""

    def __init__(
        self,
        *,
        service: str,
        version: str | None = None,
        instance: str | None = None,
        realm: str | None = None,
        buckets: Iterable[float] = DEFAULT_BUCKETS,
        started_at: float | None = None,
    ) -> None:
        self.bounds = check_buckets(buckets)
        self.info = {"service": service, "version": version or "", "instance": instance or "", "realm": realm or ""}
        self.started_at = time.time() if started_at is None else started_at
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._errors: dict[tuple[str, str], int] = {}
        self._durations: dict[tuple[str, str], Histogram] = {}
        self._in_flight = 0

    def started(self) -> None:
        with self._lock:
            self._in_flight += 1

    def finished(self, *, method: str, route: str, status: int, seconds: float, failed: bool = False) -> None:
        """One request done: `status` as sent (500 when the app raised before answering);
        `failed` when the app raised. An error is a 5xx or a failure."""
        key = (method, route)
        with self._lock:
            self._in_flight -= 1
            self._requests[(method, route, str(status))] = self._requests.get((method, route, str(status)), 0) + 1
            if failed or status >= 500:
                self._errors[key] = self._errors.get(key, 0) + 1
            histogram = self._durations.get(key)
            if histogram is None:
                histogram = self._durations[key] = Histogram(self.bounds)
            histogram.observe(max(0.0, seconds))

    def render(self) -> str:
        """The registry in the text exposition format, each family's HELP and TYPE first."""
        with self._lock:
            requests = sorted(self._requests.items())
            errors = sorted(self._errors.items())
            durations = sorted((key, Histogram(h.bounds, list(h.counts), h.total, h.count)) for key, h in self._durations.items())
            in_flight = self._in_flight
        lines = header_lines(REQUESTS, "counter", "HTTP requests answered, by method, route template and status.")
        lines += [sample_line(REQUESTS, (("method", m), ("route", r), ("status", s)), n) for (m, r, s), n in requests]
        lines += header_lines(ERRORS, "counter", "HTTP requests that failed: a 5xx status or an exception.")
        lines += [sample_line(ERRORS, (("method", m), ("route", r)), n) for (m, r), n in errors]
        lines += header_lines(DURATION, "histogram", "Time from a request's arrival to the end of its response.")
        for (method, route), histogram in durations:
            labels = (("method", method), ("route", route))
            for bound, count in histogram.cumulative():
                lines.append(sample_line(f"{DURATION}_bucket", (*labels, ("le", format_value(bound))), count))
            lines.append(sample_line(f"{DURATION}_sum", labels, histogram.total))
            lines.append(sample_line(f"{DURATION}_count", labels, histogram.count))
        lines += header_lines(IN_FLIGHT, "gauge", "HTTP requests being handled now.")
        lines.append(sample_line(IN_FLIGHT, (), in_flight))
        lines += header_lines(INFO, "gauge", "This service: always 1, its identity in the labels.")
        lines.append(sample_line(INFO, tuple(self.info.items()), 1))
        lines += header_lines(START_TIME, "gauge", "Start time of the process since the Unix epoch, in seconds.")
        lines.append(sample_line(START_TIME, (), self.started_at))
        return "\n".join(lines) + "\n"


def parse_exposition(text: str) -> list[tuple[str, dict[str, str], float]]:
    """The samples of a text exposition, as (name, labels, value); ValueError on a malformed line.

    A strict reader of what render() writes (and what Prometheus accepts), kept here so tests
    and tools can check a service's /metrics without a Prometheus client."""
    samples = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line or line.startswith("#"):
            if line.startswith("#") and not (line.startswith("# HELP ") or line.startswith("# TYPE ")):
                raise ValueError(f"line {number}: a comment other than HELP or TYPE: {line!r}")
            continue
        samples.append(_parse_sample(line, number))
    return samples


def _parse_sample(line: str, number: int) -> tuple[str, dict[str, str], float]:
    position = 0
    while position < len(line) and (line[position].isalnum() or line[position] in "_:"):
        position += 1
    name = line[:position]
    if not name or name[0].isdigit() or not name.isascii():
        raise ValueError(f"line {number}: no metric name: {line!r}")
    labels: dict[str, str] = {}
    if line[position : position + 1] == "{":
        position += 1
        while line[position : position + 1] != "}":
            start = position
            while position < len(line) and (line[position].isalnum() or line[position] == "_"):
                position += 1
            label = line[start:position]
            if not label or label[0].isdigit() or line[position : position + 2] != '="':
                raise ValueError(f"line {number}: a bad label at column {start}: {line!r}")
            position += 2
            value = []
            while True:
                if position >= len(line):
                    raise ValueError(f"line {number}: an unterminated label value: {line!r}")
                char = line[position]
                if char == "\\":
                    escaped = line[position + 1 : position + 2]
                    if escaped not in ("\\", '"', "n"):
                        raise ValueError(f"line {number}: a bad escape in a label value: {line!r}")
                    value.append("\n" if escaped == "n" else escaped)
                    position += 2
                elif char == '"':
                    position += 1
                    break
                else:
                    value.append(char)
                    position += 1
            if label in labels:
                raise ValueError(f"line {number}: label {label!r} twice: {line!r}")
            labels[label] = "".join(value)
            if line[position : position + 1] == ",":
                position += 1
            elif line[position : position + 1] != "}":
                raise ValueError(f"line {number}: expected ',' or '}}' at column {position}: {line!r}")
        position += 1
    if line[position : position + 1] != " ":
        raise ValueError(f"line {number}: expected a space before the value: {line!r}")
    parts = line[position + 1 :].split(" ")
    if not 1 <= len(parts) <= 2:
        raise ValueError(f"line {number}: expected a value and an optional timestamp: {line!r}")
    try:
        value = float(parts[0])
        if len(parts) == 2:
            int(parts[1])
    except ValueError:
        raise ValueError(f"line {number}: not a number: {line!r}") from None
    return name, labels, value


def histogram_series(
    samples: Iterable[tuple[str, Mapping[str, str], float]], name: str
) -> dict[tuple[tuple[str, str], ...], dict[str, object]]:
    """A histogram family's series from parsed samples: {labels: {"buckets": [(le, n)], "sum", "count"}}."""
    series: dict[tuple[tuple[str, str], ...], dict[str, object]] = {}
    for sample_name, labels, value in samples:
        suffix = sample_name[len(name) :] if sample_name.startswith(name) else None
        if suffix not in ("_bucket", "_sum", "_count"):
            continue
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        entry = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if suffix == "_bucket":
            entry["buckets"].append((float(labels["le"]), value))  # type: ignore[union-attr]
        else:
            entry[suffix[1:]] = value
    return series

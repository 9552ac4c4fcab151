"""The built-in computations and the demo dashboard, seeded into a new catalog.

Each computation reads only the workbench's tables and runs on the demo's data (the
temperature simulator's sensors ``temp-0001``...). They double as examples of what the query
service accepts: windows, joins with ``devices``, parameters, subqueries.
"""

from __future__ import annotations

from typing import Any

#: name -> the computation's fields (as stored).
EXAMPLE_COMPUTATIONS: dict[str, dict[str, Any]] = {
    "latest_readings": {
        "description": "The newest gold window per sensor and field.",
        "sql": (
            # Spark has no QUALIFY: the window's rank is filtered one level up.
            "SELECT sensor_id, field, window_start, avg_value, min_value, max_value, count\n"
            "FROM (SELECT *, row_number() OVER (PARTITION BY sensor_id, field "
            "ORDER BY window_start DESC) AS newest\n"
            "  FROM gold.sensor_averages)\n"
            "WHERE newest = 1\n"
            "ORDER BY sensor_id, field"
        ),
        "tile_type": "table",
        "tile_config": {},
    },
    "readings_per_minute": {
        "description": "Silver readings per minute over the last hour: is data flowing?",
        "sql": (
            "SELECT window(event_time, '1 minute').start AS minute, count(*) AS readings\n"
            "FROM silver.readings\n"
            "WHERE event_time >= current_timestamp() - INTERVAL 1 HOUR\n"
            "GROUP BY 1 ORDER BY 1"
        ),
        "tile_type": "bar",
        "tile_config": {"x": "minute", "y": "readings"},
    },
    "active_sensors": {
        "description": "Sensors that reported in the last 15 minutes.",
        "sql": (
            "SELECT count(DISTINCT sensor_id) AS sensors\n"
            "FROM silver.readings\n"
            "WHERE event_time >= current_timestamp() - INTERVAL 15 MINUTES"
        ),
        "tile_type": "stat",
        "tile_config": {"value": "sensors"},
    },
    "current_temperature": {
        "description": "Mean temperature over all sensors in the newest complete window.",
        "sql": (
            "SELECT round(avg(avg_value), 2) AS temperature\n"
            "FROM gold.sensor_averages\n"
            "WHERE field = 'temperature' AND window_start = (\n"
            "  SELECT max(window_start) FROM gold.sensor_averages WHERE field = 'temperature')"
        ),
        "tile_type": "gauge",
        "tile_config": {"value": "temperature", "min": -10, "max": 45},
    },
    "temperature_spread": {
        "description": "Highest minus lowest temperature per sensor over the last hour.",
        "sql": (
            "SELECT sensor_id, round(max(max_value) - min(min_value), 2) AS spread\n"
            "FROM gold.sensor_averages\n"
            "WHERE field = 'temperature'\n"
            "  AND window_start >= current_timestamp() - INTERVAL 1 HOUR\n"
            "GROUP BY sensor_id ORDER BY spread DESC"
        ),
        "tile_type": "bar",
        "tile_config": {"x": "sensor_id", "y": "spread"},
    },
    "sensor_history": {
        "description": "One sensor's per-minute mean, low and high of one field.",
        "sql": (
            "SELECT window_start, avg_value, min_value, max_value\n"
            "FROM gold.sensor_averages\n"
            "WHERE sensor_id = :sensor AND field = :field\n"
            "ORDER BY window_start"
        ),
        "tile_type": "timeseries",
        "tile_config": {"x": "window_start", "y": "avg_value"},
        "parameters": [
            {
                "name": "sensor",
                "type": "string",
                "default": "temp-0001",
                "description": "sensor id",
            },
            {
                "name": "field",
                "type": "string",
                "default": "temperature",
                "description": "canonical field",
            },
        ],
    },
    "data_quality": {
        "description": "Per dataset: readings in the last day, share flagged, share without "
        "an event time.",
        "sql": (
            "SELECT ingestion_id, count(*) AS readings,\n"
            "  round(avg(CASE WHEN size(flags) > 0 THEN 1.0 ELSE 0.0 END), 4) AS flagged_share,\n"
            "  round(avg(CASE WHEN event_time IS NULL THEN 1.0 ELSE 0.0 END), 4) "
            "AS untimed_share\n"
            "FROM silver.readings\n"
            "WHERE received_at >= current_timestamp() - INTERVAL 1 DAY\n"
            "GROUP BY ingestion_id ORDER BY ingestion_id"
        ),
        "tile_type": "table",
        "tile_config": {},
    },
    "recent_alerts": {
        "description": "Threshold alerts of the last day, newest first.",
        "sql": (
            "SELECT window_start, rule_name, sensor_id, field, op, threshold, value\n"
            "FROM gold.alerts\n"
            "WHERE window_start >= current_timestamp() - INTERVAL 1 DAY\n"
            "ORDER BY window_start DESC"
        ),
        "tile_type": "table",
        "tile_config": {},
    },
    "readings_by_device": {
        "description": "Readings of the last hour per registered device, with its label.",
        "sql": (
            "SELECT d.name AS device, d.sensitivity, count(r.message_id) AS readings\n"
            "FROM devices d LEFT JOIN silver.readings r\n"
            "  ON r.ingestion_id = d.ingestion_id\n"
            "  AND r.event_time >= current_timestamp() - INTERVAL 1 HOUR\n"
            "GROUP BY d.name, d.sensitivity ORDER BY readings DESC"
        ),
        "tile_type": "table",
        "tile_config": {},
    },
}

#: The demo dashboard: name, title, and its tiles (computation, viz, config, x, y, w, h).
DEMO_DASHBOARD: dict[str, Any] = {
    "name": "sensors",
    "title": "Sensors",
    "description": "Live temperature of the demo sensors, from the gold layer; the readings "
    "per registered device are for analysts.",
    "tiles": [
        ("Active sensors", "active_sensors", "stat", {"value": "sensors"}, 0, 0, 3, 2),
        (
            "Current temperature",
            "current_temperature",
            "gauge",
            {"value": "temperature", "min": -10, "max": 45},
            3,
            0,
            3,
            2,
        ),
        (
            "Readings per minute",
            "readings_per_minute",
            "bar",
            {"x": "minute", "y": "readings"},
            6,
            0,
            6,
            2,
        ),
        (
            "Average temperature per sensor",
            "sensor_averages",
            "timeseries",
            {"x": "window_start", "y": "avg_value", "color": "sensor_id"},
            0,
            2,
            12,
            4,
        ),
        # The devices view is internal: the demo's viewer sees this tile as restricted.
        ("Readings by device", "readings_by_device", "table", {}, 0, 6, 12, 3),
    ],
}

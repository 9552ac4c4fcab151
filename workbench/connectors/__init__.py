"""Connectors turn what sensors send (MQTT, REST) into envelopes. No Spark, no Delta."""

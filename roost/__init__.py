"""Roost: a clustered MQTT broker and IoT device platform."""

__version__ = "0.1.0"

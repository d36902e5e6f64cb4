"""The engine's limits and behaviour switches, filled from the config at start-up."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EngineSettings:
    # Largest packet we accept, fixed header included (sent as Maximum Packet Size).
    max_packet_size: int = 1_048_576
    # QoS 1/2 messages a client may have unacknowledged towards us (Receive Maximum).
    receive_maximum: int = 1024
    # QoS 1/2 messages we keep in flight towards one client, before its own limit.
    max_inflight: int = 100
    # Messages held for one session while it is offline or its window is full.
    max_queued_messages: int = 1000
    # Bytes (payload + topic) held for one session the same way; 0 means no limit.
    max_queued_bytes: int = 64 * 1_048_576
    # Whether QoS 0 messages are queued for offline persistent sessions (Mosquitto: no).
    queue_qos0: bool = False
    # Topic aliases a client may use towards us.
    topic_alias_maximum: int = 32
    # Highest keepalive accepted; 5.0 clients asking for more get Server Keep Alive.
    max_keepalive: int = 65535
    # Seconds a new connection has to send CONNECT.
    connect_timeout: float = 10.0
    maximum_qos: int = 2
    retain_available: bool = True
    # Session expiry for 3.x clients with clean session 0; None means never.
    persistent_session_expiry: int | None = None
    # Prefix of the Response Information returned to 5.0 clients that request it.
    response_information_prefix: str = "roost/response"
    # Bytes queued on a connection's socket beyond which QoS 0 messages are dropped.
    max_output_buffer: int = 8 * 1_048_576
    # Levels of a topic name or filter ("a/b/c" has 3); more is refused (EMQX's default).
    max_topic_levels: int = 128
    # UTF-8 bytes of a topic name or filter; 65535 is all MQTT can carry.
    max_topic_length: int = 65535
    # Subscriptions one session may hold; 0 means no limit.
    max_subscriptions: int = 0
    # UTF-8 bytes of a client identifier; 65535 is all MQTT can carry.
    max_client_id_length: int = 65535
    # Whether clients may publish to `$` topics other than `$SYS` (which they never may,
    # but for a bridge's own state topic): see roost/engine/reserved.py.
    allow_dollar_topics: bool = True
    # User Property pairs in one packet (a will counts separately); 0 means no limit.
    max_user_properties: int = 64

"""Operations: the HTTP endpoint (metrics, health, JSON API), $SYS topics and drain; they
see the node only through ``node.Node``."""

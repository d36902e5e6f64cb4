"""Operations: the HTTP endpoint (metrics, health, JSON API) and, later, $SYS topics."""

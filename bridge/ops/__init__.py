"""Operations: metrics, health/readiness, graceful drain."""

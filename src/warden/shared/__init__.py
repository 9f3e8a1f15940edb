"""State every enforcement point must share, in Redis: DLP windows and throttles."""

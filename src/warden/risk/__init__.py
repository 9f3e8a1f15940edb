"""Continuous verification: behavioural baselines per agent and an explained risk score."""

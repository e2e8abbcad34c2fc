"""Settings and topic contracts shared by every part of pageview-streams.

The native stack, docker-compose, the producers, the processors and the dashboard all read
their addresses and topic names from here, so one environment variable changes them everywhere.
"""

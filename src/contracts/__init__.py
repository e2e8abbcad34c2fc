"""What every part of pageview-streams agrees on: topic names, partitioning, record formats.

The native stack, docker-compose, the producers, the processors, Pinot and the dashboard read
their topic names from here, so one environment variable changes them everywhere.
"""

"""Apache Pinot (0.11.0) tables for the windowed topics 5-8: configs, REST client and setup.

``python -m pinot.setup`` creates or updates the four upsert tables; the dashboard queries them
through :class:`pinot.client.PinotBroker`.
"""

"""How every part of pageview-streams reaches the services: settings from the environment
(Kafka, Schema Registry, MySQL, Pinot), retrying a service that is unreachable for a while,
Kafka reads and writes beyond the plain client calls, and the logging setup."""

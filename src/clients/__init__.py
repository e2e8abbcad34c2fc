"""How every part of pageview-streams reaches the services: settings from the environment
(Kafka, Schema Registry, MySQL, Pinot) and retrying a service that is unreachable for a while."""

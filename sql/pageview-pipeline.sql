-- The page-view pipeline (topics 4-8) as streams.users, streams.country and streams.windows
-- compute it, for `python -m streams.ksql run` (scripts/demo with DEMO_ENGINE=ksql). Unlike
-- ../shared/ksql-statements/seed-001-pageviews.sql (the original deployment), it writes what
-- the dashboard's Pinot tables read: the same value fields, in lower case, window bounds in
-- epoch ms, a view without a cleaned user counted under 'unknown'. Topics are named by the
-- variables of src/contracts/topics.py: `python -m contracts.topics defines` prints them as
-- `--define` arguments of `python -m streams.ksql run`, as scripts/demo passes them.

-- topic3 is a table: the JDBC source's latest row per user, keyed by user_id as text.
CREATE TABLE users (user_key VARCHAR PRIMARY KEY, user_id BIGINT, age INT, gender VARCHAR,
                    country VARCHAR, subscription VARCHAR)
  WITH (KAFKA_TOPIC='${TOPIC_USERS}', KEY_FORMAT='KAFKA', VALUE_FORMAT='AVRO');

CREATE STREAM pageviews (session_id VARCHAR, user_id INT, source VARCHAR, event_timestamp VARCHAR)
  WITH (KAFKA_TOPIC='${TOPIC_PAGEVIEWS}', VALUE_FORMAT='JSON',
        TIMESTAMP='event_timestamp', TIMESTAMP_FORMAT='yyyy-MM-dd HH:mm:ss');

-- topic4: users with no NULL column; a user who gains one leaves the table (a tombstone).
CREATE TABLE cleaned_users
  WITH (KAFKA_TOPIC='${TOPIC_CLEANED_USERS}', VALUE_FORMAT='JSON') AS
  SELECT user_key, user_id AS `user_id`, age AS `age`, gender AS `gender`,
         country AS `country`, subscription AS `subscription`
  FROM users
  WHERE user_id IS NOT NULL AND age IS NOT NULL AND gender IS NOT NULL
    AND country IS NOT NULL AND subscription IS NOT NULL;

CREATE STREAM pageviews_enriched WITH (KAFKA_TOPIC='${TOPIC_PAGEVIEWS}_enriched') AS
  SELECT CAST(pv.user_id AS VARCHAR) AS user_key, COALESCE(u.`country`, 'unknown') AS country,
         u.`age` AS age
  FROM pageviews pv
  LEFT JOIN cleaned_users u ON CAST(pv.user_id AS VARCHAR) = u.user_key;

-- topic5: views and the average age by country, 5-minute tumbling windows.
CREATE TABLE pageviews_by_country
  WITH (KAFKA_TOPIC='${TOPIC_PAGEVIEWS_BY_COUNTRY}', VALUE_FORMAT='JSON') AS
  SELECT country, AS_VALUE(country) AS `country`, WINDOWSTART AS `window_start`,
         WINDOWEND AS `window_end`, COUNT(*) AS `pageview_count`,
         -- ksqlDB's AVG of no value is 0.0; the processors' (SQL's) is NULL.
         CASE WHEN COUNT(age) = 0 THEN CAST(NULL AS DOUBLE) ELSE AVG(age) END AS `average_age`
  FROM pageviews_enriched
  WINDOW TUMBLING (SIZE 5 MINUTES)
  GROUP BY country;

-- topic6-8: views by source in tumbling, hopping and session windows.
CREATE TABLE pageviews_tumbling
  WITH (KAFKA_TOPIC='${TOPIC_TUMBLING}', VALUE_FORMAT='JSON') AS
  SELECT source, AS_VALUE(source) AS `source`, WINDOWSTART AS `window_start`,
         WINDOWEND AS `window_end`, COUNT(*) AS `pageview_count`
  FROM pageviews
  WINDOW TUMBLING (SIZE 5 MINUTES)
  GROUP BY source;

CREATE TABLE pageviews_hopping
  WITH (KAFKA_TOPIC='${TOPIC_HOPPING}', VALUE_FORMAT='JSON') AS
  SELECT source, AS_VALUE(source) AS `source`, WINDOWSTART AS `window_start`,
         WINDOWEND AS `window_end`, COUNT(*) AS `pageview_count`
  FROM pageviews
  WINDOW HOPPING (SIZE 5 MINUTES, ADVANCE BY 1 MINUTE)
  GROUP BY source;

CREATE TABLE pageviews_session
  WITH (KAFKA_TOPIC='${TOPIC_SESSION}', VALUE_FORMAT='JSON') AS
  SELECT source, AS_VALUE(source) AS `source`, WINDOWSTART AS `window_start`,
         WINDOWEND AS `window_end`, COUNT(*) AS `pageview_count`
  FROM pageviews
  WINDOW SESSION (5 MINUTES)
  GROUP BY source;

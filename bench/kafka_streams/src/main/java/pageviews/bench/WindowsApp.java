package pageviews.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.state.SessionStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * topic6-8 of streams.windows in Kafka Streams: page views (JSON, event time from
 * event_timestamp) re-keyed by source once, then counted in 5-minute tumbling, 5-minute hopping
 * (every minute) and 5-minute-gap session windows with ksqlDB's default grace (24 h - size),
 * written as streams.windows writes them: key "source|window_start", JSON value; a session
 * merged away is retracted with pageview_count 0 and deleted true. Exactly-once v2; the record
 * cache is --cache-bytes (0: every update is emitted, as EMIT CHANGES).
 */
public final class WindowsApp {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final DateTimeFormatter FORMAT = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss");
  private static final long MINUTE = 60_000L;
  private static final long DAY = 24 * 60 * MINUTE;

  private WindowsApp() {}

  /** The page view's event time; page views come many to a second, so the last parse is kept. */
  public static final class EventTime implements TimestampExtractor {
    private String lastText;
    private long lastMillis;

    @Override
    public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
      Object value = record.value();
      if (!(value instanceof JsonNode view)) {
        return record.timestamp();
      }
      JsonNode stamp = view.get("event_timestamp");
      if (stamp == null) {
        return record.timestamp();
      }
      if (stamp.isNumber()) {
        return stamp.asLong();
      }
      String text = stamp.asText();
      if (!text.equals(lastText)) {
        lastMillis = LocalDateTime.parse(text, FORMAT).toInstant(ZoneOffset.UTC).toEpochMilli();
        lastText = text;
      }
      return lastMillis;
    }
  }

  /** JSON values as Jackson trees; a record that is not JSON becomes null (and is skipped). */
  static final class JsonSerde implements Serde<JsonNode> {
    @Override
    public Serializer<JsonNode> serializer() {
      return (topic, node) -> {
        try {
          return node == null ? null : JSON.writeValueAsBytes(node);
        } catch (Exception e) {
          throw new IllegalStateException(e);
        }
      };
    }

    @Override
    public Deserializer<JsonNode> deserializer() {
      return (topic, bytes) -> {
        if (bytes == null) {
          return null;
        }
        try {
          return JSON.readTree(bytes);
        } catch (Exception e) {
          return null;
        }
      };
    }
  }

  static byte[] row(String source, long start, long end, long count, Boolean deleted) {
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("source", source);
    out.put("window_start", start);
    out.put("window_end", end);
    out.put("pageview_count", count);
    if (deleted != null) {
      out.put("deleted", deleted);
    }
    try {
      return JSON.writeValueAsBytes(out);
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  static void timeWindows(KTable<Windowed<String>, Long> counts, String topic, Produced<String, byte[]> out) {
    counts.toStream()
        .map((w, n) -> KeyValue.pair(key(w), row(w.key(), w.window().start(), w.window().end(), n, null)))
        .to(topic, out);
  }

  static String key(Windowed<String> window) {
    return window.key() + "|" + window.window().start();
  }

  static Map<String, String> arguments(String[] args) {
    Map<String, String> out = new HashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (!args[i].startsWith("--")) {
        throw new IllegalArgumentException("expected --name value pairs, got " + args[i]);
      }
      out.put(args[i].substring(2), args[i + 1]);
    }
    return out;
  }

  static String required(Map<String, String> args, String name) {
    String value = args.get(name);
    if (value == null) {
      throw new IllegalArgumentException("missing --" + name);
    }
    return value;
  }

  public static void main(String[] argv) throws InterruptedException {
    Map<String, String> args = arguments(argv);
    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, required(args, "group"));
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, required(args, "bootstrap"));
    props.put(StreamsConfig.STATE_DIR_CONFIG, required(args, "state-dir"));
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, Long.parseLong(args.getOrDefault("cache-bytes", "0")));
    // As the Python processors' --commit-interval 1 in the benchmark (results become visible
    // at commits, and the cache flushes at commits).
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.parseLong(args.getOrDefault("commit-ms", "1000")));
    props.put(StreamsConfig.DEFAULT_TIMESTAMP_EXTRACTOR_CLASS_CONFIG, EventTime.class);
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    props.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG), "lz4");

    JsonSerde json = new JsonSerde();
    StreamsBuilder builder = new StreamsBuilder();
    KGroupedStream<String, JsonNode> bySource =
        builder.stream(required(args, "input"), Consumed.with(Serdes.String(), json))
            .filter((sessionId, view) -> view != null && view.hasNonNull("source"))
            .selectKey((sessionId, view) -> view.get("source").asText())
            .repartition(Repartitioned.<String, JsonNode>as("source").withKeySerde(Serdes.String()).withValueSerde(json))
            .groupByKey();

    Produced<String, byte[]> out = Produced.with(Serdes.String(), Serdes.ByteArray());
    Duration size = Duration.ofMinutes(5);
    Duration grace = Duration.ofMillis(DAY - 5 * MINUTE);
    KTable<Windowed<String>, Long> tumbling =
        bySource.windowedBy(TimeWindows.ofSizeAndGrace(size, grace))
            .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("tumbling"));
    KTable<Windowed<String>, Long> hopping =
        bySource.windowedBy(TimeWindows.ofSizeAndGrace(size, grace).advanceBy(Duration.ofMinutes(1)))
            .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("hopping"));
    KTable<Windowed<String>, Long> sessions =
        bySource.windowedBy(SessionWindows.ofInactivityGapAndGrace(size, Duration.ofMillis(DAY)))
            .count(Materialized.<String, Long, SessionStore<Bytes, byte[]>>as("session"));
    timeWindows(tumbling, required(args, "tumbling"), out);
    timeWindows(hopping, required(args, "hopping"), out);
    sessions.toStream()
        .map((w, n) -> KeyValue.pair(key(w), n == null
            ? row(w.key(), w.window().start(), w.window().end(), 0, true)
            : row(w.key(), w.window().start(), w.window().end(), n, false)))
        .to(required(args, "session"), out);

    KafkaStreams streams = new KafkaStreams(builder.build(props), props);
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close(Duration.ofSeconds(30));
      stopped.countDown();
    }));
    streams.setUncaughtExceptionHandler(e -> {
      e.printStackTrace();
      return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_APPLICATION;
    });
    streams.start();
    stopped.await();
  }
}

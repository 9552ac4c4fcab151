package workbench.spark;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import org.apache.spark.sql.api.java.UDF3;

/**
 * The numeric subset of a row's canonical fields: {@code
 * wb_numeric_fields(map_keys(fields), map_values(fields), skip)}.
 *
 * <p>Every value that reads as a finite double, in the map's order, except the keys listed in
 * {@code skip} (a text of keys separated by {@code \n}: the sensor id and time keys). A value
 * reads as a double exactly as Spark's {@code try_cast(value AS DOUBLE)} reads it, i.e. {@link
 * Double#parseDouble} (surrounding whitespace allowed); NaN and infinities are left out. The
 * same thing written as Spark expressions ({@code map_filter(transform_values(...))}) runs its
 * lambdas interpreted, row by row: it cost more than the JSON parsing. Keys and values come as
 * two arrays so the map's order is kept (a map argument arrives as a Scala hash map).
 */
public final class NumericFields
    implements UDF3<
        scala.collection.Seq<String>, scala.collection.Seq<String>, String, Map<String, Double>> {
  private static final long serialVersionUID = 1L;
  private static volatile Skip skip = new Skip("");

  private static final class Skip {
    final String text;
    final Set<String> keys;

    Skip(String text) {
      this.text = text;
      this.keys = text.isEmpty() ? Set.of() : Set.of(text.split("\n"));
    }
  }

  private static Set<String> skipped(String text) {
    Skip current = skip;
    if (!current.text.equals(text)) {
      current = new Skip(text);
      skip = current;
    }
    return current.keys;
  }

  /** The value as a finite double, or null (what {@code try_cast} gives, without NaN/inf). */
  static Double finite(String value) {
    if (value == null) {
      return null;
    }
    double parsed;
    try {
      parsed = Double.parseDouble(value);
    } catch (NumberFormatException e) {
      return null;
    }
    return Double.isFinite(parsed) ? parsed : null;
  }

  @Override
  public Map<String, Double> call(
      scala.collection.Seq<String> keys, scala.collection.Seq<String> values, String skipText) {
    Map<String, Double> out = new LinkedHashMap<>();
    if (keys == null || values == null) {
      return out;
    }
    Set<String> skipKeys = skipped(skipText == null ? "" : skipText);
    for (int i = 0; i < keys.size(); i++) {
      String key = keys.apply(i);
      Double number = skipKeys.contains(key) ? null : finite(values.apply(i));
      if (number != null) {
        out.put(key, number);
      }
    }
    return out;
  }
}

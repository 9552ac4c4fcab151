package workbench.spark;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.catalyst.json.JSONOptions;

/**
 * A JSON object payload read and normalized in one pass (SPEC F15, F16): {@code
 * wb_payload_fields(payload, plan)}.
 *
 * <p>Returns {@code struct<raw map<string,string>, fields map<string,string>, rules
 * array<bigint>>}: {@code raw} is what {@code from_json(payload, 'map<string,string>')} gives,
 * with a key repeated exactly kept once, at its first place, with its last value (Spark's
 * {@code LAST_WIN}); {@code fields} and {@code rules} are {@link CanonicalFields}' result for
 * the same keys and values. A payload that is null, not a JSON object or not valid JSON gives a
 * null {@code raw} and no fields.
 *
 * <p>Values are read as Spark reads them: the parser comes from Spark's own {@link JSONOptions}
 * defaults (single quotes, NaN and Infinity allowed...), strings are their text, {@code null}
 * is null, and numbers, booleans, objects and arrays are re-printed by a Jackson generator of
 * the same factory (so {@code 1.50} is {@code "1.5"} and {@code NaN} is {@code "\"NaN\""}, as
 * in {@code from_json}). Spark builds a new generator for every such value; this class keeps one
 * per thread, and parses each payload once for both maps.
 */
public final class PayloadFields implements UDF2<String, String, Row> {
  private static final long serialVersionUID = 1L;
  private static final JsonFactory FACTORY =
      new JSONOptions(scala.collection.immutable.Map$.MODULE$.empty(), "UTC", "")
          .buildJsonFactory();
  private static final ThreadLocal<Printer> PRINTERS = ThreadLocal.withInitial(Printer::new);
  /** A printer whose buffer grew past this (one huge nested value) is not kept. */
  private static final int KEEP_BYTES = 1 << 20;

  /** A reusable generator that prints one JSON value at a time. */
  private static final class Printer {
    final ByteArrayOutputStream out = new ByteArrayOutputStream(64);
    final JsonGenerator generator;

    Printer() {
      try {
        generator = FACTORY.createGenerator(out, JsonEncoding.UTF8);
      } catch (IOException e) {
        throw new IllegalStateException(e);
      }
      generator.setRootValueSeparator(null);
    }

    String print(JsonParser parser) throws IOException {
      out.reset();
      generator.copyCurrentStructure(parser);
      generator.flush();
      String text = out.toString(StandardCharsets.UTF_8);
      if (out.size() > KEEP_BYTES) {
        PRINTERS.remove();
      }
      return text;
    }
  }

  @Override
  public Row call(String payload, String planText) {
    List<String> keys = new ArrayList<>();
    List<String> values = new ArrayList<>();
    if (payload == null || !read(payload, keys, values)) {
      return RowFactory.create(null, new LinkedHashMap<String, String>(), new ArrayList<Long>());
    }
    Map<String, String> raw = new LinkedHashMap<>();
    for (int i = 0; i < keys.size(); i++) {
      raw.put(keys.get(i), values.get(i));
    }
    Row normalized = CanonicalFields.normalized(keys, values, planText);
    return RowFactory.create(raw, normalized.get(0), normalized.get(1));
  }

  /** The top-level object's keys and values in payload order; false if it is not one. */
  private static boolean read(String payload, List<String> keys, List<String> values) {
    Printer printer = PRINTERS.get();
    try (JsonParser parser = FACTORY.createParser(payload)) {
      if (parser.nextToken() != JsonToken.START_OBJECT) {
        return false;
      }
      JsonToken token;
      while ((token = parser.nextToken()) != JsonToken.END_OBJECT) {
        if (token == null) {
          return false; // the text ended inside the object
        }
        keys.add(parser.currentName());
        JsonToken value = parser.nextToken();
        if (value == JsonToken.VALUE_NULL) {
          values.add(null);
        } else if (value == JsonToken.VALUE_STRING) {
          values.add(parser.getText());
        } else {
          values.add(printer.print(parser));
        }
      }
      return true;
    } catch (IOException | RuntimeException e) {
      // Not valid JSON: from_json gives null. The printer may hold half a value: replace it.
      PRINTERS.remove();
      return false;
    }
  }
}

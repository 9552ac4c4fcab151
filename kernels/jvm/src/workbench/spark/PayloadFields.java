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
import java.util.Map;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.catalyst.json.JSONOptions;

/**
 * A JSON object payload read and normalized in one pass: {@code
 * wb_payload_fields(payload, plan)}.
 *
 * <p>Returns {@code struct<raw map<string,string>, fields map<string,string>, rules
 * array<bigint>>}: {@code raw} is what {@code from_json(payload, 'map<string,string>')} gives,
 * with a key repeated exactly kept once, at its first place, with its last value (Spark's
 * {@code LAST_WIN}); {@code fields} and {@code rules} are {@link CanonicalFields}' result for
 * the payload's field paths. A payload that is null, not a JSON object or not valid JSON gives a
 * null {@code raw} and no fields.
 *
 * <p>Field paths are the catalog's ({@code workbench/catalog/schemas.py} {@code flatten}): a
 * non-empty object nested in the payload is its members' dot paths ({@code {"loc": {"x": 1}}}
 * is {@code loc.x}), up to {@link #MAX_PATH_DEPTH} names; arrays, empty objects and deeper
 * objects are one value, as JSON text. Rules match the paths and the top-level keys, so a rule
 * may take {@code loc.x} or the whole {@code loc}.
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
  /** The most names in a field path; an object nested deeper is one value (JSON text). */
  static final int MAX_PATH_DEPTH = 16;

  private static final JsonFactory FACTORY =
      new JSONOptions(scala.collection.immutable.Map$.MODULE$.empty(), "UTC", "")
          .buildJsonFactory();
  private static final ThreadLocal<Printer> PRINTERS = ThreadLocal.withInitial(Printer::new);
  /** A printer whose buffer grew past this (one huge nested value) is not kept. */
  private static final int KEEP_BYTES = 1 << 20;

  /** An output buffer whose bytes can be read back in slices. */
  private static final class Buffer extends ByteArrayOutputStream {
    Buffer() {
      super(64);
    }

    String text(int from, int to) {
      return new String(buf, from, to - from, StandardCharsets.UTF_8);
    }

    byte at(int index) {
      return buf[index];
    }
  }

  /** A reusable generator that prints one top-level JSON value at a time. */
  private static final class Printer {
    final Buffer out = new Buffer();
    final JsonGenerator generator;

    Printer() {
      try {
        generator = FACTORY.createGenerator(out, JsonEncoding.UTF8);
      } catch (IOException e) {
        throw new IllegalStateException(e);
      }
      generator.setRootValueSeparator(null);
    }

    /**
     * Adds the top-level value at the parser, printed, to {@code fields}; for an object, its
     * members too, by path.
     */
    void add(JsonParser parser, String key, FieldPaths fields) throws IOException {
      out.reset();
      if (parser.currentToken() == JsonToken.START_OBJECT) {
        copyObject(parser, key, 1, key.length(), fields);
      } else {
        generator.copyCurrentStructure(parser);
        fields.add(key, slice(0), FieldPaths.TOP_LEVEL);
      }
      if (out.size() > KEEP_BYTES) {
        PRINTERS.remove();
      }
    }

    /**
     * Copies an object member by member, adding each value's path and printed text (members
     * nested under a top-level key {@code top} chars long).
     */
    private void copyObject(JsonParser parser, String path, int depth, int top, FieldPaths fields)
        throws IOException {
      generator.flush();
      int start = out.size();
      if (depth >= MAX_PATH_DEPTH) {
        generator.copyCurrentStructure(parser);
        fields.add(path, slice(start), top);
        return;
      }
      generator.writeStartObject();
      boolean empty = true;
      while (parser.nextToken() == JsonToken.FIELD_NAME) {
        empty = false;
        String name = parser.currentName();
        String member = path + "." + name;
        generator.writeFieldName(name);
        JsonToken value = parser.nextToken();
        if (value == JsonToken.START_OBJECT) {
          copyObject(parser, member, depth + 1, top, fields);
        } else if (value == JsonToken.VALUE_STRING) {
          generator.copyCurrentEvent(parser);
          fields.add(member, parser.getText(), top);
        } else if (value == JsonToken.VALUE_NULL) {
          generator.writeNull();
          fields.add(member, null, top);
        } else {
          generator.flush();
          int from = out.size();
          generator.copyCurrentStructure(parser);
          fields.add(member, slice(from), top);
        }
      }
      generator.writeEndObject();
      if (depth == 1) {
        fields.add(path, slice(start), empty ? FieldPaths.TOP_LEVEL : FieldPaths.TOP_OBJECT);
      } else {
        fields.add(path, slice(start), empty ? top : FieldPaths.OBJECT);
      }
    }

    /** What was printed since {@code from}, without the separator the generator put first. */
    private String slice(int from) throws IOException {
      generator.flush();
      int to = out.size();
      byte first = from < to ? out.at(from) : 0;
      return out.text(first == ':' || first == ',' ? from + 1 : from, to);
    }
  }

  @Override
  public Row call(String payload, String planText) {
    FieldPaths fields = new FieldPaths();
    if (payload == null || !read(payload, fields)) {
      return RowFactory.create(null, new LinkedHashMap<String, String>(), new ArrayList<Long>());
    }
    Map<String, String> raw = new LinkedHashMap<>();
    for (int i = 0; i < fields.size(); i++) {
      if (fields.isTopLevel(i)) {
        raw.put(fields.paths.get(i), fields.values.get(i));
      }
    }
    Row normalized = CanonicalFields.normalized(fields, planText);
    return RowFactory.create(raw, normalized.get(0), normalized.get(1));
  }

  /** The top-level object's values by field path, in payload order; false if it is not one. */
  private static boolean read(String payload, FieldPaths fields) {
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
        String key = parser.currentName();
        JsonToken value = parser.nextToken();
        if (value == JsonToken.VALUE_NULL) {
          fields.add(key, null, FieldPaths.TOP_LEVEL);
        } else if (value == JsonToken.VALUE_STRING) {
          fields.add(key, parser.getText(), FieldPaths.TOP_LEVEL);
        } else {
          printer.add(parser, key, fields);
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

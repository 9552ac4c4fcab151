package workbench.spark;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF3;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Normalization of one payload: {@code wb_canonical_fields(map_keys(raw),
 * map_values(raw), plan)}.
 *
 * <p>The semantics are defined in Python ({@code workbench/enrichment/normalization.py}, which
 * compiles the rules of one scope into {@code plan}, a JSON text); this class only runs them
 * in one pass over the payload, where the same thing written as Spark expressions needs one
 * map scan per candidate raw key. Returns {@code struct<fields map<string,string>, rules
 * array<bigint>>}: the canonical entries (first non-null candidate, raw keys matched
 * case-insensitively, the last of keys equal but for case wins) followed by the entries no
 * rule maps, and the ids of the rules whose raw key supplied a value.
 *
 * <p>Raw keys are field paths ({@link FieldPaths}): {@link PayloadFields} gives a nested
 * object's members as dot paths, and a value inside an object a rule takes never passes
 * through. As a Spark function over a {@code map<string,string>}, only top-level keys exist.
 *
 * <p>Plan: {@code <key>\n{"c": [[canonical, [[raw_lower, rule_id or null], ...]], ...], "t":
 * [taken_lower, ...]}}, the key a digest of the JSON. Parsed once per key and kept per executor
 * JVM.
 *
 * <p>The payload comes as its keys and values, in payload order: a map argument would reach a
 * Java function as a Scala hash map, whose order is not the payload's (and "the last of keys
 * equal but for case" would then be an arbitrary one).
 */
public final class CanonicalFields
    implements UDF3<scala.collection.Seq<String>, scala.collection.Seq<String>, String, Row> {
  private static final long serialVersionUID = 1L;
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Map<String, Plan> PLANS = new ConcurrentHashMap<>();
  private static final int MAX_PLANS = 256;

  private static final class Candidate {
    final String rawKey;
    final Long ruleId;

    Candidate(String rawKey, Long ruleId) {
      this.rawKey = rawKey;
      this.ruleId = ruleId;
    }
  }

  private static final class Plan {
    final String[] canonical;
    final Candidate[][] candidates;
    final Set<String> taken = new HashSet<>();

    Plan(JsonNode node) {
      JsonNode c = node.get("c");
      canonical = new String[c.size()];
      candidates = new Candidate[c.size()][];
      for (int i = 0; i < c.size(); i++) {
        canonical[i] = c.get(i).get(0).asText();
        JsonNode keys = c.get(i).get(1);
        candidates[i] = new Candidate[keys.size()];
        for (int j = 0; j < keys.size(); j++) {
          JsonNode id = keys.get(j).get(1);
          candidates[i][j] = new Candidate(keys.get(j).get(0).asText(), id.isNull() ? null : id.asLong());
        }
      }
      for (JsonNode t : node.get("t")) {
        taken.add(t.asText());
      }
    }
  }

  private static Plan plan(String text) {
    int cut = text.indexOf('\n');
    String key = cut < 0 ? text : text.substring(0, cut);
    Plan plan = PLANS.get(key);
    if (plan == null) {
      try {
        plan = new Plan(JSON.readTree(text.substring(cut + 1)));
      } catch (IOException e) {
        throw new UncheckedIOException("invalid normalization plan", e);
      }
      if (PLANS.size() >= MAX_PLANS) {
        PLANS.clear();
      }
      PLANS.put(key, plan);
    }
    return plan;
  }

  private static String lower(String key) {
    return key.toLowerCase(Locale.ROOT);
  }

  @Override
  public Row call(
      scala.collection.Seq<String> keys, scala.collection.Seq<String> values, String planText) {
    if (keys == null || values == null) {
      return RowFactory.create(new LinkedHashMap<String, String>(), new ArrayList<Long>());
    }
    return normalized(
        FieldPaths.topLevel(CollectionConverters.asJava(keys), CollectionConverters.asJava(values)),
        planText);
  }

  /**
   * {@code struct<fields, rules>} of a payload given as its values by field path, in payload
   * order (paths may repeat; the last occurrence counts).
   */
  static Row normalized(FieldPaths payload, String planText) {
    Plan plan = plan(planText);
    Map<String, String> lowered = new HashMap<>();
    // Payload order, so that of keys equal but for case the last one wins (LAST_WIN).
    for (int i = 0; i < payload.size(); i++) {
      lowered.put(lower(payload.paths.get(i)), payload.values.get(i));
    }
    Map<String, String> fields = new LinkedHashMap<>();
    List<Long> rules = new ArrayList<>();
    for (int i = 0; i < plan.canonical.length; i++) {
      for (Candidate candidate : plan.candidates[i]) {
        String value = lowered.get(candidate.rawKey);
        if (value != null) {
          fields.put(plan.canonical[i], value);
          if (candidate.ruleId != null) {
            rules.add(candidate.ruleId);
          }
          break;
        }
      }
    }
    for (int i = 0; i < payload.size(); i++) {
      String value = payload.values.get(i);
      int kind = payload.kind(i);
      if (value != null && !payload.isObject(i) && !taken(plan, payload.paths.get(i), kind)) {
        fields.put(payload.paths.get(i), value);
      }
    }
    return RowFactory.create(fields, rules);
  }

  /** Whether a rule takes the value at {@code path}, or an object around it. */
  private static boolean taken(Plan plan, String path, int kind) {
    if (plan.taken.contains(lower(path))) {
      return true;
    }
    if (kind == FieldPaths.TOP_LEVEL) {
      return false;
    }
    // The objects around it: the top-level key, then each path up to a dot after it.
    for (int dot = kind; dot >= 0 && dot < path.length(); dot = path.indexOf('.', dot + 1)) {
      if (plan.taken.contains(lower(path.substring(0, dot)))) {
        return true;
      }
    }
    return false;
  }
}

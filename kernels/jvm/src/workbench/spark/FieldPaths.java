package workbench.spark;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A payload's values by field path, in payload order: what {@link CanonicalFields} matches rules
 * against and passes through when no rule takes them.
 *
 * <p>Each entry is one of: a top-level value ({@link #TOP_LEVEL}); a non-empty top-level object
 * ({@link #TOP_OBJECT}) or nested one ({@link #OBJECT}), which a rule may take whole but which
 * never passes through (its members do); or a value nested in a top-level object, with the
 * length of that object's key (so the paths of the objects around it can be found). The
 * top-level entries, in order, are the payload's {@code raw} map.
 */
final class FieldPaths {
  /** A top-level key's value. */
  static final int TOP_LEVEL = -1;
  /** A non-empty nested object, as JSON text: matched by rules, never passed through. */
  static final int OBJECT = -2;
  /** A non-empty top-level object, as JSON text: matched by rules, never passed through. */
  static final int TOP_OBJECT = -3;

  final List<String> paths = new ArrayList<>();
  final List<String> values = new ArrayList<>();
  private int[] kinds = new int[8];

  /** An entry: its path, its value (null for JSON null) and its kind (see the class). */
  void add(String path, String value, int kind) {
    if (paths.size() == kinds.length) {
      kinds = Arrays.copyOf(kinds, kinds.length * 2);
    }
    kinds[paths.size()] = kind;
    paths.add(path);
    values.add(value);
  }

  int size() {
    return paths.size();
  }

  /** The entry's kind: one of the constants, or the length of the top-level key above it. */
  int kind(int index) {
    return kinds[index];
  }

  /** Whether the entry is an object, which never passes through. */
  boolean isObject(int index) {
    return kinds[index] == OBJECT || kinds[index] == TOP_OBJECT;
  }

  /** Whether the entry is a top-level key's value (a {@code raw} entry). */
  boolean isTopLevel(int index) {
    return kinds[index] == TOP_LEVEL || kinds[index] == TOP_OBJECT;
  }

  /** Top-level keys and values only (what a {@code map<string,string>} holds). */
  static FieldPaths topLevel(List<String> keys, List<String> values) {
    FieldPaths fields = new FieldPaths();
    for (int i = 0; i < keys.size(); i++) {
      fields.add(keys.get(i), values.get(i), TOP_LEVEL);
    }
    return fields;
  }
}

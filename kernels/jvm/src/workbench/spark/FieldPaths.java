package workbench.spark;

import java.util.ArrayList;
import java.util.List;

/**
 * A payload's values by field path, in payload order: what {@link CanonicalFields} matches rules
 * against and passes through when no rule takes them.
 *
 * <p>Each entry is one of: a top-level value ({@link #TOP_LEVEL}); a value nested in a top-level
 * object, with the length of that object's key (so the paths of the objects around it can be
 * found); or an object itself ({@link #OBJECT}), which a rule may take whole but which never
 * passes through (its members do).
 */
final class FieldPaths {
  /** A top-level key's value. */
  static final int TOP_LEVEL = -1;
  /** A non-empty object, as JSON text: matched by rules, never passed through. */
  static final int OBJECT = -2;

  final List<String> paths = new ArrayList<>();
  final List<String> values = new ArrayList<>();
  private int[] kinds = new int[8];

  /** A value: {@link #TOP_LEVEL}, or nested under a top-level key {@code top} chars long. */
  void add(String path, String value, int top) {
    if (paths.size() == kinds.length) {
      kinds = java.util.Arrays.copyOf(kinds, kinds.length * 2);
    }
    kinds[paths.size()] = top;
    paths.add(path);
    values.add(value);
  }

  /** A non-empty object at {@code path}, as JSON text. */
  void addObject(String path, String text) {
    add(path, text, OBJECT);
  }

  int size() {
    return paths.size();
  }

  /** {@link #TOP_LEVEL}, {@link #OBJECT}, or the length of the top-level key above a value. */
  int kind(int index) {
    return kinds[index];
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

package dev.strata.trainer.hf;

import java.util.Map;

/** Typed access to config.json fields with errors that name the file, the field and what was expected. */
final class HfConfigReader {
    private final Map<String, Object> c;
    private final String file;

    HfConfigReader(Map<String, Object> c, String file) {
        this.c = c;
        this.file = file;
    }

    String string(String key) {
        if (!(c.get(key) instanceof String s)) throw missing(key, "a string");
        return s;
    }

    String string(String key, String fallback) { return c.get(key) == null ? fallback : string(key); }

    int integer(String key) {
        if (!(c.get(key) instanceof Number n) || n.doubleValue() != Math.rint(n.doubleValue())) throw missing(key, "an integer");
        return n.intValue();
    }

    int integer(String key, int fallback) { return c.get(key) == null ? fallback : integer(key); }

    double number(String key, double fallback) {
        Object v = c.get(key);
        if (v == null) return fallback;
        if (!(v instanceof Number n)) throw missing(key, "a number");
        return n.doubleValue();
    }

    boolean bool(String key, boolean fallback) {
        Object v = c.get(key);
        if (v == null) return fallback;
        if (!(v instanceof Boolean b)) throw missing(key, "true or false");
        return b;
    }

    void expect(String key, String value) {
        Object v = c.get(key);
        if (v != null && !value.equals(v))
            throw new IllegalArgumentException(file + ": field '" + key + "' is '" + v + "', only '" + value + "' is supported");
    }

    void expectAbsentOrNull(String key, String why) {
        if (c.get(key) != null) throw new IllegalArgumentException(file + ": field '" + key + "' is set: " + why);
    }

    private IllegalArgumentException missing(String key, String expected) {
        Object v = c.get(key);
        return new IllegalArgumentException(file + ": field '" + key + "' " + (v == null ? "is missing" : "is " + v)
                + ", expected " + expected);
    }
}

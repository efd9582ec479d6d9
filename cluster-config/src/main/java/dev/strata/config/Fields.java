package dev.strata.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;

/** Typed reads of job keys by their full path ("training.lr"), with errors naming the source and the key. */
final class Fields {
    private final Config c;
    private final String source;

    Fields(Config strata, String source) {
        this.c = strata;
        this.source = source;
    }

    String string(String key) { return read(key, () -> c.getString(key)); }

    java.util.List<String> strings(String key) { return read(key, () -> c.getStringList(key)); }

    java.util.List<Integer> integers(String key) { return read(key, () -> c.getIntList(key)); }

    /** The kind of value at key (missing: an error naming it). */
    com.typesafe.config.ConfigValueType type(String key) { return read(key, () -> c.getValue(key).valueType()); }

    boolean bool(String key) { return read(key, () -> c.getBoolean(key)); }

    /** A whole number; 2.7 (which HOCON would truncate to 2) is refused. */
    long integer(String key) {
        double d = read(key, () -> c.getDouble(key));
        require(d == Math.rint(d) && Math.abs(d) < 0x1p53, key + " must be a whole number, got " + c.getValue(key).unwrapped());
        return read(key, () -> c.getLong(key));
    }

    /** A finite number: Infinity and NaN, which HOCON reads from strings, are refused. */
    double number(String key) {
        double d = read(key, () -> c.getDouble(key));
        require(Double.isFinite(d), key + " must be a finite number, got " + c.getValue(key).unwrapped());
        return d;
    }

    java.time.Duration duration(String key) { return read(key, () -> c.getDuration(key)); }

    int positive(String key) {
        long v = integer(key);
        require(v > 0 && v <= Integer.MAX_VALUE, key + " must be a positive integer, got " + v);
        return (int) v;
    }

    int nonNegative(String key) {
        long v = integer(key);
        require(v >= 0 && v <= Integer.MAX_VALUE, key + " must be 0 or a positive integer, got " + v);
        return (int) v;
    }

    String oneOf(String key, String... allowed) {
        String v = string(key);
        for (String a : allowed) if (a.equals(v)) return v;
        throw new ConfigError(source + ": " + key + " = \"" + v + "\" is not one of " + String.join(", ", allowed));
    }

    void require(boolean ok, String message) {
        if (!ok) throw new ConfigError(source + ": " + message);
    }

    private <T> T read(String key, java.util.function.Supplier<T> get) {
        try {
            return get.get();
        } catch (ConfigException.Missing e) {
            throw new ConfigError(source + ": " + key + " is missing");
        } catch (ConfigException.WrongType | ConfigException.BadValue e) {
            Object v = c.hasPathOrNull(key) && !c.getIsNull(key) ? c.getValue(key).unwrapped() : null;
            throw new ConfigError(source + ": " + key + " = " + v + " has the wrong type (" + e.getMessage().replaceFirst(".*: ", "") + ")");
        }
    }
}

package dev.strata.config;

/** A job or cluster setting that is missing, unknown or out of range; the message names the file and the key. */
public final class ConfigError extends IllegalArgumentException {
    public ConfigError(String message) { super(message); }
}

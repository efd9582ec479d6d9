package dev.strata.cluster;

import java.time.LocalTime;
import java.time.temporal.ChronoUnit;

/**
 * The cluster nodes' log lines, on standard output with the time (Strata keeps SLF4J silent). A JVM is a cluster
 * node or strata train's one-node cluster, never both: the latter keeps them off its console.
 */
final class Log {
    private static volatile boolean quiet;

    private Log() {}

    static void quiet() { quiet = true; }

    static void info(String format, Object... args) {
        if (!quiet) System.out.println(LocalTime.now().truncatedTo(ChronoUnit.MILLIS) + " " + String.format(format, args));
    }
}

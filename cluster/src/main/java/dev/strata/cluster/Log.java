package dev.strata.cluster;

import java.time.LocalTime;
import java.time.temporal.ChronoUnit;

/** The cluster nodes' log lines, on standard output with the time (Strata keeps SLF4J silent). */
final class Log {
    private Log() {}

    static void info(String format, Object... args) { System.out.println(LocalTime.now().truncatedTo(ChronoUnit.MILLIS) + " " + String.format(format, args)); }
}
